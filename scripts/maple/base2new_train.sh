#!/bin/bash
# MaPLe, base-to-novel: train on 16 shots of the base classes (test with base2new_test.sh).
#   bash scripts/maple/base2new_train.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep5_batch4_2ctx (default) or vit_b16_c2_ep5_batch4_2ctx_cross_datasets
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=MaPLe
CFG="${CFG:-vit_b16_c2_ep5_batch4_2ctx}"
METHOD_DIR=maple
source "$(dirname "$0")/../protocols.sh"
b2n_train "$@"
