#!/bin/bash
# KgCoOp, cross-dataset / domain generalisation: evaluate the xd_train_imagenet.sh model on all classes of <dataset>
# (the prompt learner and the hand-crafted anchor are rebuilt for its class names).
#   bash scripts/kgcoop/xd_test.sh <dataset> <seed> [KEY VALUE ...]
# Settings: scripts/kgcoop/method.sh; protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
source "$(dirname "$0")/method.sh"  # W, CFG, the fixed options
xd_test "$@"
