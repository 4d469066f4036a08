#!/bin/bash
# The MaPLe repository's name for scripts/ivlp/xd_test.sh (same arguments, same run).
exec bash "$(dirname "$0")/../ivlp/xd_test.sh" "$@"
