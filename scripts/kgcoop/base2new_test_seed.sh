#!/bin/bash
# One seed (ours; KgCoOp's own base2new_test.sh <dataset> <weight> loops the seeds and calls this).
# KgCoOp, base-to-novel: evaluate the model of base2new_train.sh (same W, env, default 8.0) on the novel classes
# (SUB=base: on the base classes).
#   bash scripts/kgcoop/base2new_test_seed.sh <dataset> <seed> [KEY VALUE ...]
# Settings: scripts/kgcoop/method.sh; protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
source "$(dirname "$0")/method.sh"  # W, CFG, the fixed options
b2n_test "$@"
