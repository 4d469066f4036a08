#!/bin/bash
# KgCoOp, cross-dataset / domain generalisation (no upstream recipe; baselines.md §4: the base-to-novel yaml on
# 16 shots of all ImageNet classes, W env default 8.0). The source dataset is XD_SOURCE (default imagenet).
# Evaluate with scripts/kgcoop/xd_test.sh <dataset> <seed>. (Upstream's file of this name is a 4-shot few-shot loop.)
#   bash scripts/kgcoop/xd_train.sh <seed> [KEY VALUE ...]
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=KgCoOp
CFG="${CFG:-vit_b16_ep100_ctxv1}"
METHOD_DIR=kgcoop
W=${W:-8.0}
SHOTS_DIR="shots_16_${W}"  # upstream's folder name carries the weight
METHOD_OPTS=(TRAINER.COOP.N_CTX 4 TRAINER.COOP.CSC False TRAINER.COOP.W "${W}" TRAINER.COOP.CLASS_TOKEN_POSITION end)
source "$(dirname "$0")/../protocols.sh"
xd_train "$@"
