#!/bin/bash
# Stage 2 of PromptKD, cross-dataset: distil the ImageNet teacher into the student on the target's unlabeled
# train split; evaluated on the target's test split (all classes).
#   bash scripts/promptkd/xd_train.sh <dataset> <seed> [KEY VALUE ...]
# XD_OUTPUT_SUBDIR (env, used by dg_train.sh): a folder between ${OUTPUT} and <dataset>.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 2 ]; then echo "usage: $0 <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1; SEED=$2; shift 2
require_seed "${SEED}" "$0 <dataset> <seed> [KEY VALUE ...]"
require_dataset "${DATASET}"
SHOTS=$(opt_value DATASET.NUM_SHOTS 0 "$@")  # the folder names the shots the run uses (upstream: 0, all images)
CFG=vit_b16_c2_ep20_batch8_4+4ctx_cross_datasets
TEACHER="${TEACHER_ROOT}/ImageNet-xd/VLPromptLearner"
[ -d "${TEACHER_ROOT}/ImageNet-xd/VLPromptLearner_large" ] && TEACHER="${TEACHER_ROOT}/ImageNet-xd/VLPromptLearner_large"
DIR="${OUTPUT}/${XD_OUTPUT_SUBDIR:-}${DATASET}/PromptKD/${CFG}_${SHOTS}shots/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer PromptKD \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "configs/trainers/PromptKD/${CFG}.yaml" \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS 0 DATASET.SUBSAMPLE_CLASSES all TRAINER.MODAL cross \
    TRAINER.PROMPTKD.TEMPERATURE 1.0 TRAINER.PROMPTKD.KD_WEIGHT 1000.0 \
    TRAINER.PROMPTKD.TEACHER_CKPT "${TEACHER}" "$@"
