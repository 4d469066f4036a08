#!/bin/bash
# Method × datasets × seeds, skipping finished runs and resuming unfinished ones, then the result table.
#   bash scripts/sweep.sh --methods promptkd coop --datasets caltech101 dtd --seeds 1 2 3 [--dry-run]
# All options: python tools/sweep.py --help.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" tools/sweep.py "$@"
