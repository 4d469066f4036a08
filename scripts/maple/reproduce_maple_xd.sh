#!/bin/bash
# Evaluate released ImageNet weights (<weights dir>/seed<S>) on <dataset> (cross-dataset / DG).
#   bash scripts/maple/reproduce_maple_xd.sh <dataset> <seed> <weights dir> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep5_batch4_2ctx_cross_datasets. Protocol and folders: scripts/protocols.sh (reproduce_xd).
set -euo pipefail
TRAINER=MaPLe
CFG="${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}"
METHOD_DIR=maple
source "$(dirname "$0")/../protocols.sh"
reproduce_xd "$@"
