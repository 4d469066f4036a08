#!/bin/bash
# IVLP, cross-dataset / domain generalisation: train on all classes of the source
# dataset (XD_SOURCE, default imagenet), 16 shots.
#   bash scripts/ivlp/xd_train.sh <seed> [KEY VALUE ...]
# Writes ${OUTPUT}/<source>/IVLP/<cfg>_16shots/seed<seed>; evaluate each target with xd_test.sh.
# There is no upstream cross-dataset config for IVLP: the base-to-novel one is reused (baselines.md §4).
# CFG (env): vit_b16_c2_ep5_batch4_2+2ctx (default, MaPLe repo), vit_b16_c2_ep20_batch4_4+4ctx (PromptSRC
# repo) or vit_b16_c2_ep5_batch4_4ctx_language_only (deep language prompting).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 <seed> [KEY VALUE ...]   (the source dataset comes from XD_SOURCE, default imagenet)" >&2
    exit 2
fi
SEED=$1; shift
SOURCE="${XD_SOURCE:-imagenet}"
require_dataset "${SOURCE}"
TRAINER=IVLP
CFG="${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}"
CONFIG="configs/trainers/${TRAINER}/${CFG}.yaml"
if [ ! -f "${CONFIG}" ]; then echo "Unknown config '${CFG}': expected ${CONFIG}" >&2; exit 2; fi
DIR="${OUTPUT}/${SOURCE}/${TRAINER}/${CFG}_16shots/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer "${TRAINER}" \
    --dataset-config-file "configs/datasets/${SOURCE}.yaml" \
    --config-file "${CONFIG}" \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS 16 "$@"
