#!/bin/bash
# MaPLe, cross-dataset: train on 16 shots of all classes of ${XD_SOURCE:-imagenet}.
#   bash scripts/maple/xd_train.sh <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep5_batch4_2ctx_cross_datasets (default) or vit_b16_c2_ep5_batch4_2ctx
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=MaPLe
CFG="${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}"
METHOD_DIR=maple
source "$(dirname "$0")/../protocols.sh"
xd_train "$@"
