#!/bin/bash
# CoOp in CoCoOp's base-to-novel protocol: train on 16 shots of the base classes; the test at the end of training
# is on the base-class test images. Novel accuracy: scripts/coop/base2new_test.sh with the same <dataset> <seed>.
#   bash scripts/coop/base2new_train.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_ctxv1 for base-to-novel (ImageNet: vit_b16_ep50_ctxv1), vit_b16_ep50_ctxv1 for cross-dataset.
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=CoOp
if [ "${1:-}" = imagenet ]; then CFG="${CFG:-vit_b16_ep50_ctxv1}"; else CFG="${CFG:-vit_b16_ctxv1}"; fi  # 200 epochs; ImageNet 50
METHOD_DIR=coop
source "$(dirname "$0")/../protocols.sh"
b2n_train "$@"
