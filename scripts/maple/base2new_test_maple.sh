#!/bin/bash
# The MaPLe repository's name for scripts/maple/base2new_test.sh (same arguments, same run).
exec bash "$(dirname "$0")/base2new_test.sh" "$@"
