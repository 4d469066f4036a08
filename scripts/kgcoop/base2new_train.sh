#!/bin/bash
# KgCoOp, base-to-novel: train on 16 shots of the base classes with knowledge-guided weight W (env, default 8.0,
# a float); the test at the end of training is on the base-class test images. Novel accuracy:
# scripts/kgcoop/base2new_test.sh with the same <dataset> <seed> (and W).
#   bash scripts/kgcoop/base2new_train.sh <dataset> <seed> [KEY VALUE ...]
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=KgCoOp
CFG="${CFG:-vit_b16_ep100_ctxv1}"
METHOD_DIR=kgcoop
W=${W:-8.0}
SHOTS_DIR="shots_16_${W}"  # upstream's folder name carries the weight
METHOD_OPTS=(TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.W "${W}" TRAINER.COOP.CLASS_TOKEN_POSITION end)
source "$(dirname "$0")/../protocols.sh"
b2n_train "$@"
