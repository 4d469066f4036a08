#!/bin/bash
# CoOp in CoCoOp's base-to-novel protocol: evaluate the model of base2new_train.sh on the novel classes
# (SUB=base: on the base classes).
#   bash scripts/coop/base2new_test.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_ctxv1 for base-to-novel (ImageNet: vit_b16_ep50_ctxv1), vit_b16_ep50_ctxv1 for cross-dataset.
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=CoOp
if [ "${1:-}" = imagenet ]; then CFG="${CFG:-vit_b16_ep50_ctxv1}"; else CFG="${CFG:-vit_b16_ctxv1}"; fi  # 200 epochs; ImageNet 50
METHOD_DIR=coop
source "$(dirname "$0")/../protocols.sh"
b2n_test "$@"
