#!/bin/bash
# Evaluate released ImageNet weights (<weights dir>/seed<S>) on <dataset> (cross-dataset / DG).
#   bash scripts/promptsrc/reproduce_xd.sh <dataset> <seed> <weights dir> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets. Protocol and folders: scripts/protocols.sh (reproduce_xd).
set -euo pipefail
TRAINER=PromptSRC
CFG="${CFG:-vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets}"
METHOD_DIR=promptsrc
source "$(dirname "$0")/../protocols.sh"
reproduce_xd "$@"
