#!/bin/bash
# VPT-deep, cross-dataset: evaluate the xd_train.sh model on <dataset>, all classes.
#   bash scripts/vpt/xd_test.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep5_batch4_4
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=VPT
CFG="${CFG:-vit_b16_c2_ep5_batch4_4}"
METHOD_DIR=vpt
source "$(dirname "$0")/../protocols.sh"
xd_test "$@"
