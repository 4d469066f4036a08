#!/bin/bash
# PromptSRC as a ViT-B/16 baseline, base-to-novel: evaluate the base2new_train.sh model on the novel classes (SUB=base: base).
#   bash scripts/promptsrc/base2new_test.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep20_batch4_4+4ctx (default)
# The PromptKD teacher (ViT-L/14) has its own scripts: base2new_train_teacher.sh, xd_train_teacher.sh.
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=PromptSRC
CFG="${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}"
METHOD_DIR=promptsrc
source "$(dirname "$0")/../protocols.sh"
b2n_test "$@"
