#!/bin/bash
# VPT-deep, base-to-novel: evaluate the base2new_train.sh model on the novel classes (SUB=base: base).
#   bash scripts/vpt/base2new_test.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep5_batch4_4
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=VPT
CFG="${CFG:-vit_b16_c2_ep5_batch4_4}"
METHOD_DIR=vpt
source "$(dirname "$0")/../protocols.sh"
b2n_test "$@"
