#!/bin/bash
# MaPLe, base-to-novel: evaluate the base2new_train.sh model on the novel classes (SUB=base: base).
#   bash scripts/maple/base2new_test.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep5_batch4_2ctx (default) or vit_b16_c2_ep5_batch4_2ctx_cross_datasets
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=MaPLe
CFG="${CFG:-vit_b16_c2_ep5_batch4_2ctx}"
METHOD_DIR=maple
source "$(dirname "$0")/../protocols.sh"
b2n_test "$@"
