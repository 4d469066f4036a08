# Sourced by every run script: repository root, data and output roots from the environment, and a runner
# that prints the command before running it.
#   DATA    dataset root (default: ./data)
#   OUTPUT  output root  (default: ./output)
#   PYTHON  interpreter  (default: python3, else python, from PATH; our tools and tests pass their own)
#   LAUNCH     how train.py is started, e.g. LAUNCH="torchrun --standalone --nproc_per_node 4" for several GPUs
#              (default: ${PYTHON})
#   DRY_RUN=1  print the commands without running them
#   FORCE=1    start afresh even when --output-dir holds a run: train.py --force keeps the old folder as
#              <dir>.old-<timestamp> (otherwise a finished run is skipped, as upstream's scripts skip existing
#              results, and an unfinished one resumes from its last epoch)
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}" || exit 1
DATA="${DATA:-${REPO_ROOT}/data}"
OUTPUT="${OUTPUT:-${REPO_ROOT}/output}"
PYTHON="${PYTHON:-$(command -v python3 || command -v python || echo python)}"

run() {
    local out="" previous=""
    for arg in "$@"; do
        if [ "${previous}" = --output-dir ]; then out="${arg}"; fi
        previous="${arg}"
    done
    if [ -n "${LAUNCH:-}" ] && [ "${2:-}" = train.py ]; then
        # shellcheck disable=SC2086  # LAUNCH is a command line: split it into words
        set -- ${LAUNCH} "${@:2}"
    fi
    if [ -n "${out}" ] && [ "${FORCE:-0}" != 1 ] && finished "${out}"; then
        echo "= finished, skipped: ${out}  (FORCE=1 runs it again)"
        return 0
    fi
    if [ "${FORCE:-0}" = 1 ]; then
        # train.py --force keeps the old folder as <dir>.old-<timestamp> and starts afresh (flags go before KEY VALUE)
        local args=() arg inserted=0
        for arg in "$@"; do
            args+=("${arg}")
            if [ "${inserted}" = 0 ] && [ "${arg##*/}" = train.py ]; then args+=(--force); inserted=1; fi
        done
        set -- "${args[@]}"
    fi
    echo "+ $*"
    if [ "${DRY_RUN:-0}" = 1 ]; then return 0; fi
    "$@"
}

# True when <dir>/results.json records the final test of a run
finished() {
    [ -f "$1/results.json" ] && "${PYTHON}" -c '
import json, sys
sys.exit(0 if "final" in json.load(open(sys.argv[1], encoding="utf-8")) else 1)' "$1/results.json" 2>/dev/null
}

# Where PromptSRC teachers are written and where the PromptKD student looks for them (upstream: ./teacher_model)
TEACHER_ROOT="${TEACHER_ROOT:-${REPO_ROOT}/teacher_model}"

# DATASET.NAME of a configs/datasets/<stem>.yaml (e.g. caltech101 -> Caltech101)
dataset_name() {
    "${PYTHON}" -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['DATASET']['NAME'])" \
        "configs/datasets/$1.yaml"
}

# PromptKD's per-dataset KD weight (upstream's script comment; DTD moved to 200 in March 2024)
kd_weight() {
    case "$1" in
        fgvc_aircraft|oxford_flowers|dtd) echo 200.0 ;;
        *) echo 1000.0 ;;
    esac
}

# The epoch a test script loads: LOADEP (env), else the last OPTIM.MAX_EPOCH among the KEY VALUE arguments,
# else the config's.   usage: LOADEP=$(load_epoch <config yaml> "$@")
load_epoch() {
    local config=$1
    shift
    if [ -n "${LOADEP:-}" ]; then echo "${LOADEP}"; return 0; fi
    "${PYTHON}" -c '
import sys, yaml
config, opts = sys.argv[1], sys.argv[2:]
epochs = [value for key, value in zip(opts[::2], opts[1::2]) if key == "OPTIM.MAX_EPOCH"]
print(epochs[-1] if epochs else yaml.safe_load(open(config))["OPTIM"]["MAX_EPOCH"])' "${config}" "$@"
}

require_dataset() {
    if [ ! -f "configs/datasets/$1.yaml" ]; then
        echo "Unknown dataset '$1': expected configs/datasets/$1.yaml" >&2
        exit 2
    fi
}

# Positional arguments are checked, so an argument in the wrong place fails instead of running something else
# (e.g. KgCoOp's weight 8.0 where a seed is expected).   usage: require_seed <value> <usage line>
require_seed() {
    if ! [[ "$1" =~ ^[0-9]+$ ]]; then
        echo "Expected a seed (a whole number) but got '$1'. usage: $2" >&2
        exit 2
    fi
}

require_number() {  # <value> <what> <usage line>
    if ! [[ "$1" =~ ^[0-9]+([.][0-9]*)?([eE][-+]?[0-9]+)?$ ]]; then
        echo "Expected $2 (a number, e.g. 8.0) but got '$1'. usage: $3" >&2
        exit 2
    fi
}

# The seeds a script that loops over seeds runs, as the original scripts do (SEEDS env, default "1 2 3")
seeds() {
    local seed
    for seed in ${SEEDS:-1 2 3}; do require_seed "${seed}" "SEEDS=\"1 2 3\" (whole numbers)"; done
    echo "${SEEDS:-1 2 3}"
}

# The value the run will get for KEY: the last KEY VALUE pair among the arguments, else DEFAULT
#   usage: SHOTS=$(opt_value DATASET.NUM_SHOTS 0 "$@")
opt_value() {
    local key=$1 value=$2
    shift 2
    while [ $# -ge 2 ]; do
        if [ "$1" = "${key}" ]; then value=$2; fi
        shift 2
    done
    echo "${value}"
}

# PromptSRC's few-shot GPA (mean std) per dataset: 45 5 for the fine-grained / texture / satellite datasets, else 30 30
fewshot_gpa() {
    case "$1" in
        stanford_cars|oxford_flowers|fgvc_aircraft|dtd|eurosat) echo "45 5" ;;
        *) echo "30 30" ;;
    esac
}
