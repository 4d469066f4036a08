#!/bin/bash
# CoOp's own few-shot protocol (coop/main.sh): train on <shots> shots of all classes; the test at the end of
# training is on the test split.
#   bash scripts/coop/fewshot.sh <dataset> <seed> [shots] [cfg] [nctx] [csc] [ctp] [KEY VALUE ...]
# Defaults: 16 shots, 16 random context vectors, csc False, ctp end (or middle / front); cfg by shots as the paper:
# vit_b16 (200 epochs) for 8 and 16 shots, vit_b16_ep100 for 2 and 4, vit_b16_ep50 for 1, ImageNet always
# vit_b16_ep50. The optional arguments end at the first KEY (e.g. OPTIM.MAX_EPOCH). Paths: DATA, OUTPUT (env).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 2 ]; then
    echo "usage: $0 <dataset> <seed> [shots] [cfg] [nctx] [csc] [ctp] [KEY VALUE ...]" >&2
    exit 2
fi
DATASET=$1; SEED=$2; shift 2
require_seed "${SEED}" "$0 <dataset> <seed> [shots] [cfg] [nctx] [csc] [ctp] [KEY VALUE ...]"
require_dataset "${DATASET}"
OPTIONAL=()
while [ $# -gt 0 ] && [ ${#OPTIONAL[@]} -lt 5 ] && ! [[ $1 =~ ^[A-Z][A-Z0-9_]*\. ]]; do
    OPTIONAL+=("$1"); shift
done
SHOTS=${OPTIONAL[0]:-16}
require_seed "${SHOTS}" "$0 <dataset> <seed> [shots] ...  ([shots] is a whole number)"
if [ "${DATASET}" = imagenet ] || [ "${SHOTS}" -le 1 ]; then DEFAULT_CFG=vit_b16_ep50
elif [ "${SHOTS}" -le 4 ]; then DEFAULT_CFG=vit_b16_ep100
else DEFAULT_CFG=vit_b16
fi
CFG=${OPTIONAL[1]:-${DEFAULT_CFG}}
NCTX=${OPTIONAL[2]:-16}
CSC=${OPTIONAL[3]:-False}
CTP=${OPTIONAL[4]:-end}
TRAINER=CoOp
DIR="${OUTPUT}/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/nctx${NCTX}_csc${CSC}_ctp${CTP}/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer ${TRAINER} \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "configs/trainers/${TRAINER}/${CFG}.yaml" \
    --output-dir "${DIR}" \
    TRAINER.COOP.N_CTX "${NCTX}" TRAINER.COOP.CSC "${CSC}" TRAINER.COOP.CLASS_TOKEN_POSITION "${CTP}" \
    DATASET.NUM_SHOTS "${SHOTS}" "$@"
