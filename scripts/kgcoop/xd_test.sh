#!/bin/bash
# KgCoOp, cross-dataset / domain generalisation: evaluate the xd_train.sh model on all classes of <dataset>
# (the prompt learner and the hand-crafted anchor are rebuilt for its class names).
#   bash scripts/kgcoop/xd_test.sh <dataset> <seed> [KEY VALUE ...]
# Loads epoch LOADEP (env; default: OPTIM.MAX_EPOCH of the KEY VALUE args, else of the yaml); the source
# dataset is XD_SOURCE (default imagenet). Paths: DATA, OUTPUT (env).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 2 ]; then echo "usage: $0 <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1; SEED=$2; shift 2
require_dataset "${DATASET}"
SOURCE=${XD_SOURCE:-imagenet}
TRAINER=KgCoOp
CFG=vit_b16_ep100_ctxv1
SHOTS=16
CFG_FILE="configs/trainers/${TRAINER}/${CFG}.yaml"
LOADEP=$(load_epoch "${CFG_FILE}" "$@")  # LOADEP, else the last OPTIM.MAX_EPOCH override, else the yaml's

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer ${TRAINER} \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "${CFG_FILE}" \
    --output-dir "${OUTPUT}/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${DATASET}/seed${SEED}" \
    --model-dir "${OUTPUT}/${SOURCE}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}" \
    --load-epoch "${LOADEP}" --eval-only \
    TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.CLASS_TOKEN_POSITION end "$@"
