#!/bin/bash
# KgCoOp, cross-dataset / domain generalisation (no upstream recipe; as KgCoOp's base-to-novel recipe: its yaml on
# 16 shots of all ImageNet classes, W env default 8.0). The source dataset is XD_SOURCE (default imagenet).
# Evaluate with scripts/kgcoop/xd_test.sh <dataset> <seed>. (KgCoOp's own xd_train.sh is a 4-shot few-shot loop; it keeps that name.)
#   bash scripts/kgcoop/xd_train_imagenet.sh <seed> [KEY VALUE ...]
# Settings: scripts/kgcoop/method.sh; protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
source "$(dirname "$0")/method.sh"  # W, CFG, the fixed options
xd_train "$@"
