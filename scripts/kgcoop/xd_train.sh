#!/bin/bash
# KgCoOp, cross-dataset / domain generalisation (no upstream recipe; baselines.md §4: the base-to-novel yaml on
# 16 shots of all ImageNet classes, W env default 8.0). The source dataset is XD_SOURCE (default imagenet).
# Evaluate with scripts/kgcoop/xd_test.sh <dataset> <seed>. (Upstream's file of this name is a 4-shot few-shot loop.)
#   bash scripts/kgcoop/xd_train.sh <seed> [KEY VALUE ...]
# Paths: DATA, OUTPUT (env).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 1 ]; then echo "usage: $0 <seed> [KEY VALUE ...]" >&2; exit 2; fi
SEED=$1; shift
SOURCE=${XD_SOURCE:-imagenet}
require_dataset "${SOURCE}"
TRAINER=KgCoOp
CFG=vit_b16_ep100_ctxv1
SHOTS=16
W=${W:-8.0}
DIR="${OUTPUT}/${SOURCE}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer ${TRAINER} \
    --dataset-config-file "configs/datasets/${SOURCE}.yaml" \
    --config-file "configs/trainers/${TRAINER}/${CFG}.yaml" \
    --output-dir "${DIR}" \
    TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.W "${W}" TRAINER.COOP.CLASS_TOKEN_POSITION end \
    DATASET.NUM_SHOTS ${SHOTS} "$@"
