#!/bin/bash
# VPT-deep, cross-dataset: train on 16 shots of all classes of ${XD_SOURCE:-imagenet}.
#   bash scripts/vpt/xd_train.sh <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep5_batch4_4
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=VPT
CFG="${CFG:-vit_b16_c2_ep5_batch4_4}"
METHOD_DIR=vpt
source "$(dirname "$0")/../protocols.sh"
xd_train "$@"
