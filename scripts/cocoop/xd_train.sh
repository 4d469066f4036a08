#!/bin/bash
# CoCoOp, cross-dataset: train on 16 shots of all classes of ${XD_SOURCE:-imagenet}.
#   bash scripts/cocoop/xd_train.sh <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c4_ep10_batch1_ctxv1
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=CoCoOp
CFG="${CFG:-vit_b16_c4_ep10_batch1_ctxv1}"
METHOD_DIR=cocoop
source "$(dirname "$0")/../protocols.sh"
xd_train "$@"
