#!/bin/bash
# The MaPLe repository's name for scripts/vpt/xd_test.sh (same arguments, same run).
exec bash "$(dirname "$0")/xd_test.sh" "$@"
