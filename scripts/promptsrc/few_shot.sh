#!/bin/bash
# PromptSRC's few-shot protocol: <shots> shots of all classes, for each seed of SEEDS (env, default "1 2 3"), with
# the dataset's GPA settings of PromptSRC's recipe (scripts/common.sh fewshot_gpa; KEY VALUE overrides win).
#   bash scripts/promptsrc/few_shot.sh <dataset> <shots> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep50_batch4_4+4ctx_few_shot. Output: ${OUTPUT}/<dataset>/PromptSRC/<cfg>_<shots>shots/seed<S>.
set -euo pipefail
TRAINER=PromptSRC
CFG="${CFG:-vit_b16_c2_ep50_batch4_4+4ctx_few_shot}"
METHOD_DIR=promptsrc
source "$(dirname "$0")/../protocols.sh"
USAGE="bash scripts/promptsrc/few_shot.sh <dataset> <shots> [KEY VALUE ...]"
if [ $# -lt 2 ]; then echo "usage: ${USAGE}" >&2; exit 2; fi
DATASET=$1; SHOTS=$2; shift 2
require_seed "${SHOTS}" "${USAGE}  (<shots> is a whole number)"
require_dataset "${DATASET}"
_config
read -r GPA_MEAN GPA_STD <<< "$(fewshot_gpa "${DATASET}")"
for SEED in $(seeds); do
    _train_py "${DATASET}" "${SEED}" "${OUTPUT}/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}" \
        DATASET.NUM_SHOTS "${SHOTS}" TRAINER.PROMPTSRC.GPA_MEAN "${GPA_MEAN}" TRAINER.PROMPTSRC.GPA_STD "${GPA_STD}" "$@"
done
