#!/bin/bash
# A method of your own (a file that train.py --plugin loads), run with the shared protocol (xd_test in
# scripts/protocols.sh): the plugin file, its trainer and its yaml come from the environment.
#   PROMPTKD_PLUGINS=path/my_method.py TRAINER=MyMethod CONFIG_FILE=path/my_method.yaml \
#       bash scripts/plugin/xd_test.sh <arguments of scripts/maple/xd_test.sh>
# (tools/sweep.py --plugin path/my_method.py --plugin-config path/my_method.yaml --methods MyMethod sets these.)
set -euo pipefail
source "$(dirname "$0")/../protocols.sh"
plugin_method
xd_test "$@"
