#!/bin/bash
# Stage 1 of PromptKD: the PromptSRC ViT-L/14 teacher on 16 shots of the base classes (seed 1), once per dataset.
#   bash scripts/promptsrc/base2new_train_teacher.sh <dataset> [KEY VALUE ...]
# Writes ${TEACHER_ROOT}/<DATASET.NAME>/VLPromptLearner/model.pth.tar-20, where the student looks by default.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 1 ]; then echo "usage: $0 <dataset> [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1; shift
require_dataset "${DATASET}"
CFG=vit_l14_c2_ep20_batch8_4+4ctx
NAME=$(dataset_name "${DATASET}")

run "${PYTHON}" train.py \
    --root "${DATA}" --seed 1 --trainer PromptSRC \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "configs/trainers/PromptSRC/${CFG}.yaml" \
    --output-dir "${TEACHER_ROOT}/${NAME}" \
    DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base "$@"
