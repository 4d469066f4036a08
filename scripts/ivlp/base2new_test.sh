#!/bin/bash
# IVLP, base-to-novel: evaluate the base2new_train.sh model on the novel classes
# (SUB=base: on the base classes).
#   bash scripts/ivlp/base2new_test.sh <dataset> <seed> [KEY VALUE ...]
# LOADEP (env): the checkpoint epoch; default the epoch training ended at (OPTIM.MAX_EPOCH).
# CFG (env): vit_b16_c2_ep5_batch4_2+2ctx (default, MaPLe repo), vit_b16_c2_ep20_batch4_4+4ctx (PromptSRC
# repo) or vit_b16_c2_ep5_batch4_4ctx_language_only (deep language prompting).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 2 ]; then echo "usage: $0 <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1; SEED=$2; shift 2
require_dataset "${DATASET}"
TRAINER=IVLP
CFG="${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}"
CONFIG="configs/trainers/${TRAINER}/${CFG}.yaml"
if [ ! -f "${CONFIG}" ]; then echo "Unknown config '${CFG}': expected ${CONFIG}" >&2; exit 2; fi
# The epoch to load: LOADEP (env), else the last OPTIM.MAX_EPOCH of the KEY VALUE arguments, else the yaml's.
LOADEP="${LOADEP:-$("${PYTHON}" -c '
import sys, yaml
config, opts = sys.argv[1], sys.argv[2:]
epochs = [value for key, value in zip(opts[::2], opts[1::2]) if key == "OPTIM.MAX_EPOCH"]
print(epochs[-1] if epochs else yaml.safe_load(open(config))["OPTIM"]["MAX_EPOCH"])' "${CONFIG}" "$@")}"
SUB="${SUB:-new}"
if [ "${SUB}" != new ] && [ "${SUB}" != base ]; then
    echo "SUB must be new or base, got '${SUB}'" >&2
    exit 2
fi
TAIL="${DATASET}/shots_16/${TRAINER}/${CFG}/seed${SEED}"
MODEL_DIR="${OUTPUT}/base2new/train_base/${TAIL}"
DIR="${OUTPUT}/base2new/test_${SUB}/${TAIL}"
if [ ! -d "${MODEL_DIR}" ]; then
    echo "No trained model in ${MODEL_DIR}: run scripts/ivlp/base2new_train.sh ${DATASET} ${SEED} first" >&2
    exit 1
fi

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer "${TRAINER}" \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "${CONFIG}" \
    --output-dir "${DIR}" \
    --model-dir "${MODEL_DIR}" --load-epoch "${LOADEP}" --eval-only \
    DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES "${SUB}" "$@"
