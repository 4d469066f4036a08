#!/bin/bash
# CoOp in CoCoOp's cross-dataset / domain-generalisation protocol: train on 16 shots of all ImageNet classes
# (the source dataset is XD_SOURCE, default imagenet). Evaluate with scripts/coop/xd_test.sh <dataset> <seed>.
#   bash scripts/coop/xd_train.sh <seed> [KEY VALUE ...]
# CFG (env): vit_b16_ctxv1 for base-to-novel (ImageNet: vit_b16_ep50_ctxv1), vit_b16_ep50_ctxv1 for cross-dataset.
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=CoOp
CFG="${CFG:-vit_b16_ep50_ctxv1}"
METHOD_DIR=coop
source "$(dirname "$0")/../protocols.sh"
xd_train "$@"
