#!/bin/bash
# MaPLe, cross-dataset: evaluate the xd_train.sh model on <dataset>, all classes.
#   bash scripts/maple/xd_test.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep5_batch4_2ctx_cross_datasets (default) or vit_b16_c2_ep5_batch4_2ctx
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=MaPLe
CFG="${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}"
METHOD_DIR=maple
source "$(dirname "$0")/../protocols.sh"
xd_test "$@"
