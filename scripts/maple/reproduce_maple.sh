#!/bin/bash
# Evaluate released base-to-novel weights (<weights dir>/base/seed<S>) on the base and the novel classes.
#   bash scripts/maple/reproduce_maple.sh <dataset> <seed> <weights dir> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep5_batch4_2ctx. Protocol and folders: scripts/protocols.sh (reproduce_b2n).
set -euo pipefail
TRAINER=MaPLe
CFG="${CFG:-vit_b16_c2_ep5_batch4_2ctx}"
METHOD_DIR=maple
source "$(dirname "$0")/../protocols.sh"
reproduce_b2n "$@"
