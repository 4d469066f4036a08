#!/bin/bash
# A method of your own (a file that train.py --plugin loads), run with the shared protocol (b2n_train in
# scripts/protocols.sh): the plugin file, its trainer and its yaml come from the environment.
#   PROMPTKD_PLUGINS=path/my_method.py TRAINER=MyMethod CONFIG_FILE=path/my_method.yaml \
#       bash scripts/plugin/base2new_train.sh <arguments of scripts/maple/base2new_train.sh>
# (tools/sweep.py --plugin path/my_method.py --plugin-config path/my_method.yaml --methods MyMethod sets these.)
set -euo pipefail
: "${PROMPTKD_PLUGINS:?set PROMPTKD_PLUGINS to the method file (train.py --plugin)}"
: "${TRAINER:?set TRAINER to the trainer class the plugin registers}"
: "${CONFIG_FILE:?set CONFIG_FILE to the yaml of the method}"
CFG="$(basename "${CONFIG_FILE}" .yaml)"
METHOD_DIR=plugin
source "$(dirname "$0")/../protocols.sh"
b2n_train "$@"
