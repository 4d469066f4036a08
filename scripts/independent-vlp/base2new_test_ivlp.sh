#!/bin/bash
# The MaPLe repository's name for scripts/ivlp/base2new_test.sh (same arguments, same run).
exec bash "$(dirname "$0")/../ivlp/base2new_test.sh" "$@"
