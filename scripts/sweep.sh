#!/bin/bash
# Method × datasets × seeds, skipping finished runs and resuming unfinished ones, then the result table.
#   bash scripts/sweep.sh --methods promptkd coop --datasets caltech101 dtd --seeds 1 2 3 [--dry-run]
# All options: python tools/sweep.py --help.
set -euo pipefail
# shellcheck source=common.sh  # PYTHON (the interpreter rule of every script) and the repository root
source "$(dirname "$0")/common.sh"
exec "${PYTHON}" tools/sweep.py "$@"
