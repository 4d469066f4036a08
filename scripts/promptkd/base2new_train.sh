#!/bin/bash
# Stage 2 of PromptKD, base-to-novel: distil the dataset's teacher into the ViT-B/16 student on the unlabeled
# train split of all classes; base accuracy = best epoch on base-class test images, novel at that epoch.
#   bash scripts/promptkd/base2new_train.sh <dataset> <seed> [KEY VALUE ...]
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 2 ]; then echo "usage: $0 <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1; SEED=$2; shift 2
require_seed "${SEED}" "$0 <dataset> <seed> [KEY VALUE ...]"
require_dataset "${DATASET}"
SHOTS=$(opt_value DATASET.NUM_SHOTS 0 "$@")  # the folder names the shots the run uses (upstream: 0, all images)
CFG=vit_b16_c2_ep20_batch8_4+4ctx
NAME=$(dataset_name "${DATASET}")
DIR="${OUTPUT}/base2new/train_base/${DATASET}/shots_${SHOTS}/PromptKD/${CFG}/seed_${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer PromptKD \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "configs/trainers/PromptKD/${CFG}.yaml" \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS 0 TRAINER.MODAL base2novel \
    TRAINER.PROMPTKD.TEMPERATURE 1.0 TRAINER.PROMPTKD.KD_WEIGHT "$(kd_weight "${DATASET}")" \
    TRAINER.PROMPTKD.TEACHER_CKPT "${TEACHER_ROOT}/${NAME}/VLPromptLearner" "$@"
