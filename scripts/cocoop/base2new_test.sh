#!/bin/bash
# CoCoOp, base-to-novel: evaluate the base2new_train.sh model on the novel classes (SUB=base: base).
#   bash scripts/cocoop/base2new_test.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c4_ep10_batch1_ctxv1
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=CoCoOp
CFG="${CFG:-vit_b16_c4_ep10_batch1_ctxv1}"
METHOD_DIR=cocoop
source "$(dirname "$0")/../protocols.sh"
b2n_test "$@"
