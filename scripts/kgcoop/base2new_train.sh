#!/bin/bash
# KgCoOp, base-to-novel: train on 16 shots of the base classes with knowledge-guided weight W (env, default 8.0,
# a float); the test at the end of training is on the base-class test images. Novel accuracy:
# scripts/kgcoop/base2new_test.sh with the same <dataset> <seed> (and W).
#   bash scripts/kgcoop/base2new_train.sh <dataset> <seed> [KEY VALUE ...]
# Paths: DATA, OUTPUT (env).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 2 ]; then echo "usage: $0 <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1; SEED=$2; shift 2
require_dataset "${DATASET}"
TRAINER=KgCoOp
CFG=vit_b16_ep100_ctxv1
SHOTS=16
W=${W:-8.0}
DIR="${OUTPUT}/base2new/train_base/${DATASET}/shots_${SHOTS}_${W}/${TRAINER}/${CFG}/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer ${TRAINER} \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "configs/trainers/${TRAINER}/${CFG}.yaml" \
    --output-dir "${DIR}" \
    TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.W "${W}" TRAINER.COOP.CLASS_TOKEN_POSITION end \
    DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES base "$@"
