#!/bin/bash
# CoOp in CoCoOp's base-to-novel protocol: evaluate the model of base2new_train.sh on the novel classes
# (SUB=base: on the base classes).
#   bash scripts/coop/base2new_test.sh <dataset> <seed> [KEY VALUE ...]
# Loads epoch LOADEP (env; default: OPTIM.MAX_EPOCH of the KEY VALUE args, else of the yaml).
# Paths: DATA, OUTPUT (env).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 2 ]; then echo "usage: $0 <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1; SEED=$2; shift 2
require_dataset "${DATASET}"
TRAINER=CoOp
CFG=vit_b16_ctxv1  # loads epoch 200 (ImageNet: vit_b16_ep50_ctxv1, epoch 50)
if [ "${DATASET}" = imagenet ]; then CFG=vit_b16_ep50_ctxv1; fi
SHOTS=16
SUB=${SUB:-new}
CFG_FILE="configs/trainers/${TRAINER}/${CFG}.yaml"
LOADEP=$(load_epoch "${CFG_FILE}" "$@")  # LOADEP, else the last OPTIM.MAX_EPOCH override, else the yaml's
COMMON_DIR="${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer ${TRAINER} \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "${CFG_FILE}" \
    --output-dir "${OUTPUT}/base2new/test_${SUB}/${COMMON_DIR}" \
    --model-dir "${OUTPUT}/base2new/train_base/${COMMON_DIR}" \
    --load-epoch "${LOADEP}" --eval-only \
    DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES "${SUB}" "$@"
