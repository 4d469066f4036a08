#!/bin/bash
# KgCoOp, base-to-novel: evaluate the model of base2new_train.sh (same W, env, default 8.0) on the novel classes
# (SUB=base: on the base classes).
#   bash scripts/kgcoop/base2new_test.sh <dataset> <seed> [KEY VALUE ...]
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=KgCoOp
CFG="${CFG:-vit_b16_ep100_ctxv1}"
METHOD_DIR=kgcoop
W=${W:-8.0}
SHOTS_DIR="shots_16_${W}"  # upstream's folder name carries the weight
METHOD_OPTS=(TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.W "${W}" TRAINER.COOP.CLASS_TOKEN_POSITION end)
source "$(dirname "$0")/../protocols.sh"
b2n_test "$@"
