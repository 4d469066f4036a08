#!/bin/bash
# MaPLe, base-to-novel: train on 16 shots of the base classes.
#   bash scripts/maple/base2new_train.sh <dataset> <seed> [KEY VALUE ...]
# Writes ${OUTPUT}/base2new/train_base/<dataset>/shots_16/MaPLe/<cfg>/seed<seed>; test with base2new_test.sh.
# CFG (env): another configs/trainers/MaPLe/<cfg>.yaml.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 2 ]; then echo "usage: $0 <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1; SEED=$2; shift 2
require_dataset "${DATASET}"
TRAINER=MaPLe
CFG="${CFG:-vit_b16_c2_ep5_batch4_2ctx}"
CONFIG="configs/trainers/${TRAINER}/${CFG}.yaml"
if [ ! -f "${CONFIG}" ]; then echo "Unknown config '${CFG}': expected ${CONFIG}" >&2; exit 2; fi
DIR="${OUTPUT}/base2new/train_base/${DATASET}/shots_16/${TRAINER}/${CFG}/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer "${TRAINER}" \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "${CONFIG}" \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base "$@"
