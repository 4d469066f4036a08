#!/bin/bash
# CoOp in CoCoOp's cross-dataset / domain-generalisation protocol: train on 16 shots of all ImageNet classes
# (the source dataset is XD_SOURCE, default imagenet). Evaluate with scripts/coop/xd_test.sh <dataset> <seed>.
#   bash scripts/coop/xd_train.sh <seed> [KEY VALUE ...]
# Paths: DATA, OUTPUT (env).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 1 ]; then echo "usage: $0 <seed> [KEY VALUE ...]" >&2; exit 2; fi
SEED=$1; shift
SOURCE=${XD_SOURCE:-imagenet}
require_dataset "${SOURCE}"
TRAINER=CoOp
CFG=vit_b16_ep50_ctxv1
SHOTS=16
DIR="${OUTPUT}/${SOURCE}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer ${TRAINER} \
    --dataset-config-file "configs/datasets/${SOURCE}.yaml" \
    --config-file "configs/trainers/${TRAINER}/${CFG}.yaml" \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS ${SHOTS} "$@"
