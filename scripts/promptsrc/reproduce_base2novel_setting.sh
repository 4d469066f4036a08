#!/bin/bash
# Evaluate released base-to-novel weights (<weights dir>/base/seed<S>) on the base and the novel classes.
#   bash scripts/promptsrc/reproduce_base2novel_setting.sh <dataset> <seed> <weights dir> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep20_batch4_4+4ctx. Protocol and folders: scripts/protocols.sh (reproduce_b2n).
set -euo pipefail
TRAINER=PromptSRC
CFG="${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}"
METHOD_DIR=promptsrc
source "$(dirname "$0")/../protocols.sh"
reproduce_b2n "$@"
