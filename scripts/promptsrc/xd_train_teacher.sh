#!/bin/bash
# The cross-dataset / domain-generalisation teacher: PromptSRC ViT-L/14 on ImageNet, all 1000 classes, 16 shots.
#   bash scripts/promptsrc/xd_train_teacher.sh [KEY VALUE ...]
# Class prompts are encoded in chunks of 100 (activation checkpointing) so 1000 classes fit on one GPU.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
CFG=vit_l14_c2_ep20_batch8_4+4ctx

run "${PYTHON}" train.py \
    --root "${DATA}" --seed 1 --trainer PromptSRC \
    --dataset-config-file configs/datasets/imagenet.yaml \
    --config-file "configs/trainers/PromptSRC/${CFG}.yaml" \
    --output-dir "${TEACHER_ROOT}/ImageNet-xd" \
    DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES all TRAINER.PROMPTSRC.TEXT_CHUNK 100 "$@"
