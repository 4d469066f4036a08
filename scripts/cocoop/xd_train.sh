#!/bin/bash
# CoCoOp, cross-dataset / domain generalisation: train on 16 shots of all ImageNet classes (the source dataset
# is XD_SOURCE, default imagenet). Evaluate with scripts/cocoop/xd_test.sh <dataset> <seed>.
#   bash scripts/cocoop/xd_train.sh <seed> [KEY VALUE ...]
# Paths: DATA, OUTPUT (env).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 1 ]; then echo "usage: $0 <seed> [KEY VALUE ...]" >&2; exit 2; fi
SEED=$1; shift
SOURCE=${XD_SOURCE:-imagenet}
require_dataset "${SOURCE}"
TRAINER=CoCoOp
CFG=vit_b16_c4_ep10_batch1_ctxv1
SHOTS=16
DIR="${OUTPUT}/${SOURCE}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer ${TRAINER} \
    --dataset-config-file "configs/datasets/${SOURCE}.yaml" \
    --config-file "configs/trainers/${TRAINER}/${CFG}.yaml" \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS ${SHOTS} "$@"
