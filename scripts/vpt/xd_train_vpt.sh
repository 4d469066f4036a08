#!/bin/bash
# The MaPLe repository's name for scripts/vpt/xd_train.sh (same arguments, same run).
exec bash "$(dirname "$0")/xd_train.sh" "$@"
