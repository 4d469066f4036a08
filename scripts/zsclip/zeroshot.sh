#!/bin/bash
# Zero-shot CLIP on one dataset (no training).
#   bash scripts/zsclip/zeroshot.sh <dataset> [cfg] [KEY VALUE ...]
# <dataset> is a file stem of configs/datasets (e.g. caltech101); [cfg] one of configs/trainers/CoOp
# (default vit_b16). Base-to-novel: add DATASET.SUBSAMPLE_CLASSES base|new. Paths: DATA, OUTPUT (env).
set -euo pipefail
source "$(dirname "$0")/../common.sh"

if [ $# -lt 1 ]; then
    echo "usage: bash scripts/zsclip/zeroshot.sh <dataset> [cfg] [KEY VALUE ...]" >&2
    exit 2
fi
DATASET=$1
shift
CFG=vit_b16
if [ $# -ge 1 ] && ! [[ $1 =~ ^[A-Z][A-Z0-9_]*\. ]]; then CFG=$1; shift; fi  # [cfg] ends at the first KEY
require_dataset "${DATASET}"
if [ ! -f "configs/trainers/CoOp/${CFG}.yaml" ]; then
    echo "Unknown config '${CFG}': expected configs/trainers/CoOp/${CFG}.yaml" >&2
    exit 2
fi
TRAINER=ZeroshotCLIP

run "${PYTHON}" train.py \
    --root "${DATA}" \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/CoOp/${CFG}.yaml \
    --output-dir "${OUTPUT}/${TRAINER}/${CFG}/${DATASET}" \
    --eval-only "$@"
