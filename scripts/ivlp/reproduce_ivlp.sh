#!/bin/bash
# Evaluate released base-to-novel weights (<weights dir>/base/seed<S>) on the base and the novel classes (PromptSRC repository).
#   bash scripts/ivlp/reproduce_ivlp.sh <dataset> <seed> <weights dir> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep20_batch4_4+4ctx. Protocol and folders: scripts/protocols.sh (reproduce_b2n).
set -euo pipefail
TRAINER=IVLP
CFG="${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}"
METHOD_DIR=ivlp
source "$(dirname "$0")/../protocols.sh"
reproduce_b2n "$@"
