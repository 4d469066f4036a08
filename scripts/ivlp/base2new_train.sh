#!/bin/bash
# IVLP, base-to-novel: train on 16 shots of the base classes.
#   bash scripts/ivlp/base2new_train.sh <dataset> <seed> [KEY VALUE ...]
# Writes ${OUTPUT}/base2new/train_base/<dataset>/shots_16/IVLP/<cfg>/seed<seed>; test with base2new_test.sh.
# CFG (env): vit_b16_c2_ep5_batch4_2+2ctx (default, MaPLe repo), vit_b16_c2_ep20_batch4_4+4ctx (PromptSRC
# repo) or vit_b16_c2_ep5_batch4_4ctx_language_only (deep language prompting).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ $# -lt 2 ]; then echo "usage: $0 <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
DATASET=$1; SEED=$2; shift 2
require_dataset "${DATASET}"
TRAINER=IVLP
CFG="${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}"
CONFIG="configs/trainers/${TRAINER}/${CFG}.yaml"
if [ ! -f "${CONFIG}" ]; then echo "Unknown config '${CFG}': expected ${CONFIG}" >&2; exit 2; fi
DIR="${OUTPUT}/base2new/train_base/${DATASET}/shots_16/${TRAINER}/${CFG}/seed${SEED}"

run "${PYTHON}" train.py \
    --root "${DATA}" --seed "${SEED}" --trainer "${TRAINER}" \
    --dataset-config-file "configs/datasets/${DATASET}.yaml" \
    --config-file "${CONFIG}" \
    --output-dir "${DIR}" \
    DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base "$@"
