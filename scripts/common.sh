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

require_dataset() {
    if [ ! -f "configs/datasets/$1.yaml" ]; then
        echo "Unknown dataset '$1': expected configs/datasets/$1.yaml" >&2
        exit 2
    fi
}
