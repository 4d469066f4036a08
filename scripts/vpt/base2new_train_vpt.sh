#!/bin/bash
# The MaPLe repository's name for scripts/vpt/base2new_train.sh (same arguments, same run).
exec bash "$(dirname "$0")/base2new_train.sh" "$@"
