#!/bin/bash
# CoOp in CoCoOp's cross-dataset / domain-generalisation protocol: evaluate the xd_train.sh model on all classes
# of <dataset> (the prompt learner is rebuilt for its class names).
#   bash scripts/coop/xd_test.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_ctxv1 for base-to-novel (ImageNet: vit_b16_ep50_ctxv1), vit_b16_ep50_ctxv1 for cross-dataset.
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=CoOp
CFG="${CFG:-vit_b16_ep50_ctxv1}"
METHOD_DIR=coop
source "$(dirname "$0")/../protocols.sh"
xd_test "$@"
