#!/bin/bash
# CoCoOp, cross-dataset: evaluate the xd_train.sh model on <dataset>, all classes.
#   bash scripts/cocoop/xd_test.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c4_ep10_batch1_ctxv1
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=CoCoOp
CFG="${CFG:-vit_b16_c4_ep10_batch1_ctxv1}"
METHOD_DIR=cocoop
source "$(dirname "$0")/../protocols.sh"
xd_test "$@"
