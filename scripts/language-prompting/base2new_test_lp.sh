#!/bin/bash
# The MaPLe repository's name for scripts/ivlp/base2new_test.sh (same arguments, same run with the deep language prompting config: IVLP, 4 text ctx, depth 12, no vision prompts).
CFG="${CFG:-vit_b16_c2_ep5_batch4_4ctx_language_only}" \
    exec bash "$(dirname "$0")/../ivlp/base2new_test.sh" "$@"
