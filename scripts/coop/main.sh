#!/bin/bash
# CoOp's own few-shot script: <shots> shots of all classes, for each seed of SEEDS (env, default "1 2 3").
#   bash scripts/coop/main.sh <dataset> <cfg> <ctp> <nctx> <shots> <csc> [KEY VALUE ...]   e.g. caltech101 rn50 end 16 1 False
# Output: ${OUTPUT}/<dataset>/CoOp/<cfg>_<shots>shots/nctx<nctx>_csc<csc>_ctp<ctp>/seed<S>. One seed: scripts/coop/fewshot.sh.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
USAGE="bash scripts/coop/main.sh <dataset> <cfg> <ctp: end|middle|front> <nctx> <shots> <csc: True|False> [KEY VALUE ...]"
if [ $# -lt 6 ]; then echo "usage: ${USAGE}" >&2; exit 2; fi
DATASET=$1; CFG=$2; CTP=$3; NCTX=$4; SHOTS=$5; CSC=$6; shift 6
case "${CTP}" in end|middle|front) ;; *) echo "Expected <ctp> end, middle or front, got '${CTP}'. usage: ${USAGE}" >&2; exit 2 ;; esac
case "${CSC}" in True|False) ;; *) echo "Expected <csc> True or False, got '${CSC}'. usage: ${USAGE}" >&2; exit 2 ;; esac
require_seed "${NCTX}" "${USAGE}  (<nctx> is a whole number)"
require_seed "${SHOTS}" "${USAGE}  (<shots> is a whole number)"
for SEED in $(seeds); do
    bash scripts/coop/fewshot.sh "${DATASET}" "${SEED}" "${SHOTS}" "${CFG}" "${NCTX}" "${CSC}" "${CTP}" "$@"
done
