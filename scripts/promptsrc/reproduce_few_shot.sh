#!/bin/bash
# Evaluate PromptSRC's released few-shot weights: <weights dir>/<shots>shot/seed<S> for each seed of SEEDS
# (env, default "1 2 3"), into ${OUTPUT}/few_shot/<dataset>/PromptSRC/<cfg>_<shots>shots/seed<S>.
#   bash scripts/promptsrc/reproduce_few_shot.sh <dataset> <shots> <weights dir> [KEY VALUE ...]
set -euo pipefail
TRAINER=PromptSRC
CFG="${CFG:-vit_b16_c2_ep50_batch4_4+4ctx_few_shot}"
METHOD_DIR=promptsrc
source "$(dirname "$0")/../protocols.sh"
USAGE="bash scripts/promptsrc/reproduce_few_shot.sh <dataset> <shots> <weights dir> [KEY VALUE ...]"
if [ $# -lt 3 ]; then echo "usage: ${USAGE}" >&2; exit 2; fi
DATASET=$1; SHOTS=$2; WEIGHTS=$3; shift 3
require_seed "${SHOTS}" "${USAGE}  (<shots> is a whole number)"
require_dataset "${DATASET}"
_config
_load_epoch "$@"
for SEED in $(seeds); do
    _require_weights "${WEIGHTS}/${SHOTS}shot/seed${SEED}"
    _train_py "${DATASET}" "${SEED}" "${OUTPUT}/few_shot/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}" \
        --model-dir "${WEIGHTS}/${SHOTS}shot/seed${SEED}" --load-epoch "${LOADEP}" --eval-only DATASET.NUM_SHOTS "${SHOTS}" "$@"
done
