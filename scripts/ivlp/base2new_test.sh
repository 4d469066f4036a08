#!/bin/bash
# IVLP, base-to-novel: evaluate the base2new_train.sh model on the novel classes (SUB=base: base).
#   bash scripts/ivlp/base2new_test.sh <dataset> <seed> [KEY VALUE ...]
# CFG (env): vit_b16_c2_ep5_batch4_2+2ctx (default, MaPLe repo), vit_b16_c2_ep20_batch4_4+4ctx (PromptSRC repo) or vit_b16_c2_ep5_batch4_4ctx_language_only
# Protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
TRAINER=IVLP
CFG="${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}"
METHOD_DIR=ivlp
source "$(dirname "$0")/../protocols.sh"
b2n_test "$@"
