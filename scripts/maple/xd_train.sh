#!/bin/bash
# MaPLe, cross-dataset / domain generalisation: train on all classes of the source
# dataset (XD_SOURCE, default imagenet), 16 shots.
#   bash scripts/maple/xd_train.sh <seed> [KEY VALUE ...]
# Writes ${OUTPUT}/<source>/MaPLe/<cfg>_16shots/seed<seed>; evaluate each target with xd_test.sh.
# CFG (env): another configs/trainers/MaPLe/<cfg>.yaml.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 <seed> [KEY VALUE ...]   (the source dataset comes from XD_SOURCE, default imagenet)" >&2
    exit 2
fi
SEED=$1; shift
SOURCE="${XD_SOURCE:-imagenet}"
require_dataset "${SOURCE}"
TRAINER=MaPLe
CFG="${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}"
CONFIG="configs/trainers/${TRAINER}/${CFG}.yaml"
if [ ! -f "${CONFIG}" ]; then echo "Unknown config '${CFG}': expected ${CONFIG}" >&2; exit 2; fi
DIR="${OUTPUT}/${SOURCE}/${TRAINER}/${CFG}_16shots/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer "${TRAINER}" \
    --dataset-config-file "configs/datasets/${SOURCE}.yaml" \
    --config-file "${CONFIG}" \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS 16 "$@"
