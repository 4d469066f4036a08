#!/bin/bash
# Zero-shot CLIP in the base-to-novel protocol: evaluate on the base and on the novel classes' test images.
#   bash scripts/zsclip/base2new.sh <dataset> [cfg] [KEY VALUE ...]
# Writes ${OUTPUT}/base2new/test_{base,new}/<dataset>/shots_0/ZeroshotCLIP/<cfg>/ (no seed: nothing is trained),
# where tools/parse_results.py pairs the two. [cfg]: one of configs/trainers/CoOp (default vit_b16).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 1 ]; then echo "usage: $0 <dataset> [cfg] [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1
CFG=vit_b16
if [ $# -ge 2 ] && ! [[ $2 =~ ^[A-Z][A-Z0-9_]*\. ]]; then CFG=$2; shift; fi
shift
require_dataset "${DATASET}"

for SUB in base new; do
    run "${PYTHON}" train.py \
        --root "${DATA}" --trainer ZeroshotCLIP \
        --dataset-config-file "configs/datasets/${DATASET}.yaml" \
        --config-file "configs/trainers/CoOp/${CFG}.yaml" \
        --output-dir "${OUTPUT}/base2new/test_${SUB}/${DATASET}/shots_0/ZeroshotCLIP/${CFG}" \
        --eval-only DATASET.SUBSAMPLE_CLASSES "${SUB}" "$@"
done
