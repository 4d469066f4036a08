#!/bin/bash
# CoOp's own domain-generalisation evaluation: the ImageNet model of main.sh (16 shots, 16 ctx, csc False, ctp end)
# on <dataset>, for each seed of SEEDS (env, default "1 2 3"), loading epoch 50 (LOADEP env overrides).
#   bash scripts/coop/eval.sh <dataset> <cfg> [KEY VALUE ...]      e.g. imagenetv2 rn50_ep50
set -euo pipefail
source "$(dirname "$0")/../common.sh"
USAGE="bash scripts/coop/eval.sh <dataset> <cfg> [KEY VALUE ...]"
if [ $# -lt 2 ]; then echo "usage: ${USAGE}" >&2; exit 2; fi
DATASET=$1; CFG=$2; shift 2
require_dataset "${DATASET}"
CONFIG="configs/trainers/CoOp/${CFG}.yaml"
if [ ! -f "${CONFIG}" ]; then echo "Unknown config '${CFG}': expected ${CONFIG}" >&2; exit 2; fi
TAIL="${CFG}_16shots/nctx16_cscFalse_ctpend"
for SEED in $(seeds); do
    MODEL_DIR="${OUTPUT}/imagenet/CoOp/${TAIL}/seed${SEED}"
    run "${PYTHON}" train.py \
        --root "${DATA}" --seed "${SEED}" --trainer CoOp \
        --dataset-config-file "configs/datasets/${DATASET}.yaml" \
        --config-file "${CONFIG}" \
        --output-dir "${OUTPUT}/evaluation/CoOp/${TAIL}/${DATASET}/seed${SEED}" \
        --model-dir "${MODEL_DIR}" --load-epoch "${LOADEP:-50}" --eval-only \
        TRAINER.COOP.N_CTX 16 TRAINER.COOP.CSC False TRAINER.COOP.CLASS_TOKEN_POSITION end "$@"
done
