#!/bin/bash
# CoCoOp, base-to-novel: train on 16 shots of the base classes (test with base2new_test.sh).
#   bash scripts/cocoop/base2new_train.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c4_ep10_batch1_ctxv1
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=CoCoOp
CFG="${CFG:-vit_b16_c4_ep10_batch1_ctxv1}"
METHOD_DIR=cocoop
source "$(dirname "$0")/../protocols.sh"
b2n_train "$@"
