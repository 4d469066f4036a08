#!/bin/bash
# KgCoOp's own xd_train.sh: 4 shots of all classes on each benchmark dataset (DATASETS env, default the 11), for
# each seed of SEEDS (default "1 2 3"), weight W (env, default 8.0), into upstream's output_1120_xd folder
# (${OUTPUT}_1120_xd/base2new/train_base/<dataset>/shots_4_<W>/KgCoOp/<cfg>/seed<S>).
# Cross-dataset from ImageNet (train once, evaluate on the others): scripts/kgcoop/xd_train_imagenet.sh <seed>.
#   bash scripts/kgcoop/xd_train.sh [KEY VALUE ...]
set -euo pipefail
source "$(dirname "$0")/method.sh"  # W, CFG, the fixed options
if [ $# -ge 1 ] && ! [[ $1 =~ ^[A-Z][A-Z0-9_]*\. ]]; then
    echo "scripts/kgcoop/xd_train.sh takes only KEY VALUE overrides (it loops datasets and seeds), got '$1'." >&2
    echo "Cross-dataset training from ImageNet for one seed: bash scripts/kgcoop/xd_train_imagenet.sh <seed>" >&2
    exit 2
fi
_config
for DATASET in ${DATASETS:-imagenet caltech101 oxford_pets stanford_cars oxford_flowers food101 fgvc_aircraft sun397 dtd eurosat ucf101}; do
    require_dataset "${DATASET}"
    for SEED in $(seeds); do
        _train_py "${DATASET}" "${SEED}" "${OUTPUT}_1120_xd/base2new/train_base/${DATASET}/shots_4_${W}/${TRAINER}/${CFG}/seed${SEED}" \
            "${METHOD_OPTS[@]}" DATASET.NUM_SHOTS 4 DATASET.SUBSAMPLE_CLASSES all "$@"
    done
done
