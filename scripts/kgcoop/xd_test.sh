#!/bin/bash
# KgCoOp, cross-dataset / domain generalisation: evaluate the xd_train.sh model on all classes of <dataset>
# (the prompt learner and the hand-crafted anchor are rebuilt for its class names).
#   bash scripts/kgcoop/xd_test.sh <dataset> <seed> [KEY VALUE ...]
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=KgCoOp
CFG="${CFG:-vit_b16_ep100_ctxv1}"
METHOD_DIR=kgcoop
W=${W:-8.0}
SHOTS_DIR="shots_16_${W}"  # upstream's folder name carries the weight
METHOD_OPTS=(TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.W "${W}" TRAINER.COOP.CLASS_TOKEN_POSITION end)
source "$(dirname "$0")/../protocols.sh"
xd_test "$@"
