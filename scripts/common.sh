# Sourced by every run script: repository root, data and output roots from the environment, and a runner
# that prints the command before running it.
#   DATA    dataset root (default: ./data)
#   OUTPUT  output root  (default: ./output)
#   PYTHON  interpreter  (default: python)
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}" || exit 1
DATA="${DATA:-${REPO_ROOT}/data}"
OUTPUT="${OUTPUT:-${REPO_ROOT}/output}"
PYTHON="${PYTHON:-python}"

run() {
    echo "+ $*"
    "$@"
}
