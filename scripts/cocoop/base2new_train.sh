#!/bin/bash
# CoCoOp, base-to-novel: train on 16 shots of the base classes; the test at the end of training is on the
# base-class test images. Novel accuracy: scripts/cocoop/base2new_test.sh with the same <dataset> <seed>.
#   bash scripts/cocoop/base2new_train.sh <dataset> <seed> [KEY VALUE ...]
# Paths: DATA, OUTPUT (env).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 2 ]; then echo "usage: $0 <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1; SEED=$2; shift 2
require_dataset "${DATASET}"
TRAINER=CoCoOp
CFG=vit_b16_c4_ep10_batch1_ctxv1
SHOTS=16
DIR="${OUTPUT}/base2new/train_base/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer ${TRAINER} \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "configs/trainers/${TRAINER}/${CFG}.yaml" \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES base "$@"
