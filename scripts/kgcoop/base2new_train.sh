#!/bin/bash
# KgCoOp's own signature: base-to-novel training with knowledge-guided weight <weight>, for each seed
# of SEEDS (env, default "1 2 3"), as the KgCoOp repository's script does.
#   bash scripts/kgcoop/base2new_train.sh <dataset> <weight> [KEY VALUE ...]      e.g. dtd 8.0
# One seed at a time: scripts/kgcoop/base2new_train_seed.sh <dataset> <seed> (W env).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
USAGE="bash scripts/kgcoop/base2new_train.sh <dataset> <weight> [KEY VALUE ...]"
if [ $# -lt 2 ]; then echo "usage: ${USAGE}" >&2; exit 2; fi
DATASET=$1; WEIGHT=$2; shift 2
require_number "${WEIGHT}" "the knowledge-guided weight W" "${USAGE}"
for SEED in $(seeds); do
    W="${WEIGHT}" bash scripts/kgcoop/base2new_train_seed.sh "${DATASET}" "${SEED}" "$@"
done
