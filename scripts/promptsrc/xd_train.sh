#!/bin/bash
# PromptSRC as a ViT-B/16 baseline, cross-dataset: train on 16 shots of all classes of ${XD_SOURCE:-imagenet}.
#   bash scripts/promptsrc/xd_train.sh <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets (default)
# The PromptKD teacher (ViT-L/14) has its own scripts: base2new_train_teacher.sh, xd_train_teacher.sh.
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=PromptSRC
CFG="${CFG:-vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets}"
METHOD_DIR=promptsrc
source "$(dirname "$0")/../protocols.sh"
xd_train "$@"
