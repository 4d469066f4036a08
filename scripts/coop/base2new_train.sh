#!/bin/bash
# CoOp in CoCoOp's base-to-novel protocol: train on 16 shots of the base classes; the test at the end of training
# is on the base-class test images. Novel accuracy: scripts/coop/base2new_test.sh with the same <dataset> <seed>.
#   bash scripts/coop/base2new_train.sh <dataset> <seed> [KEY VALUE ...]
# Paths: DATA, OUTPUT (env).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 2 ]; then echo "usage: $0 <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1; SEED=$2; shift 2
require_dataset "${DATASET}"
TRAINER=CoOp
# vit_b16_ctxv1: 200 epochs, "a photo of a" (4 ctx); ImageNet: the 50-epoch variant
CFG=vit_b16_ctxv1
if [ "${DATASET}" = imagenet ]; then CFG=vit_b16_ep50_ctxv1; fi
SHOTS=16
DIR="${OUTPUT}/base2new/train_base/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer ${TRAINER} \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "configs/trainers/${TRAINER}/${CFG}.yaml" \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES base "$@"
