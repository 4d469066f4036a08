#!/bin/bash
# One seed (ours; KgCoOp's own base2new_train.sh <dataset> <weight> loops the seeds and calls this).
# KgCoOp, base-to-novel: train on 16 shots of the base classes with knowledge-guided weight W (env, default 8.0,
# a float); the test at the end of training is on the base-class test images. Novel accuracy:
# scripts/kgcoop/base2new_test_seed.sh with the same <dataset> <seed> (and W).
#   bash scripts/kgcoop/base2new_train_seed.sh <dataset> <seed> [KEY VALUE ...]
# Settings: scripts/kgcoop/method.sh; protocol, output folders, LOADEP / SUB / XD_SOURCE: scripts/protocols.sh.
set -euo pipefail
source "$(dirname "$0")/method.sh"  # W, CFG, the fixed options
b2n_train "$@"
