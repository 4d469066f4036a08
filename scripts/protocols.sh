# Sourced by the per-method scripts: the base-to-novel and cross-dataset protocols, written once.
# A method script sets TRAINER, CFG (a configs/trainers/${TRAINER}/<cfg>.yaml stem) and METHOD_DIR (its folder
# under scripts/), then calls one of b2n_train / b2n_test / xd_train / xd_test / reproduce_b2n / reproduce_xd
# with its own arguments. Seeds must be whole numbers (a weight in a seed's place is an error).
# Optional: METHOD_OPTS (array of KEY VALUE pairs every run of the method gets, before the user's), SHOTS_DIR
# (the base-to-novel folder level, default shots_16; KgCoOp: shots_16_<W>) and B2N_TRAIN_SCRIPT / XD_TRAIN_SCRIPT
# (the one-run train scripts the test scripts point to when their model is missing).
#   LOADEP (env)    checkpoint epoch for the *_test protocols (default: the last OPTIM.MAX_EPOCH override, else the yaml's)
#   SUB (env)       b2n_test classes: new (default) or base
#   XD_SOURCE (env) the cross-dataset source (default: imagenet)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

plugin_method() {  # scripts/plugin/: a --plugin method, its file, trainer and yaml from the environment
    : "${PROMPTKD_PLUGINS:?set PROMPTKD_PLUGINS to the method file (train.py --plugin)}"
    : "${TRAINER:?set TRAINER to the trainer class the plugin registers}"
    : "${CONFIG_FILE:?set CONFIG_FILE to the yaml of the method}"
    CFG="$(basename "${CONFIG_FILE}" .yaml)"
    METHOD_DIR=plugin
}

_config() {  # CONFIG_FILE (env): a yaml outside configs/ (a plugin method's; scripts/plugin/)
    CONFIG="${CONFIG_FILE:-configs/trainers/${TRAINER}/${CFG}.yaml}"
    if [ ! -f "${CONFIG}" ]; then echo "Unknown config '${CFG}': expected ${CONFIG}" >&2; exit 2; fi
}

_load_epoch() {
    LOADEP="$(load_epoch "${CONFIG}" "$@")"
}

_train_py() {  # <dataset stem> <seed> <output dir> [args ...]
    local dataset=$1 seed=$2 dir=$3
    shift 3
    run "${PYTHON}" train.py \
        --root "${DATA}" --seed "${seed}" --trainer "${TRAINER}" \
        --dataset-config-file "configs/datasets/${dataset}.yaml" \
        --config-file "${CONFIG}" \
        --output-dir "${dir}" "$@"
}

b2n_train() {  # <dataset> <seed> [KEY VALUE ...]: 16 shots of the base classes
    if [ $# -lt 2 ]; then echo "usage: scripts/${METHOD_DIR}/$(basename "$0") <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
    local dataset=$1 seed=$2
    shift 2
    require_seed "${seed}" "scripts/${METHOD_DIR}/$(basename "$0") <dataset> <seed> [KEY VALUE ...]"
    require_dataset "${dataset}"
    _config
    _train_py "${dataset}" "${seed}" "${OUTPUT}/base2new/train_base/${dataset}/${SHOTS_DIR:-shots_16}/${TRAINER}/${CFG}/seed${seed}" \
        ${METHOD_OPTS[@]+"${METHOD_OPTS[@]}"} DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base "$@"
}

b2n_test() {  # <dataset> <seed> [KEY VALUE ...]: evaluate the b2n_train model on the novel (SUB=base: base) classes
    if [ $# -lt 2 ]; then echo "usage: scripts/${METHOD_DIR}/$(basename "$0") <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
    local dataset=$1 seed=$2
    shift 2
    require_seed "${seed}" "scripts/${METHOD_DIR}/$(basename "$0") <dataset> <seed> [KEY VALUE ...]"
    require_dataset "${dataset}"
    _config
    _load_epoch "$@"
    local sub="${SUB:-new}"
    if [ "${sub}" != new ] && [ "${sub}" != base ]; then echo "SUB must be new or base, got '${sub}'" >&2; exit 2; fi
    local tail="${dataset}/${SHOTS_DIR:-shots_16}/${TRAINER}/${CFG}/seed${seed}"
    local model_dir="${OUTPUT}/base2new/train_base/${tail}"
    if [ ! -d "${model_dir}" ] && [ "${DRY_RUN:-0}" != 1 ]; then
        echo "No trained model in ${model_dir}: run scripts/${METHOD_DIR}/${B2N_TRAIN_SCRIPT:-base2new_train.sh} ${dataset} ${seed} first" >&2
        exit 1
    fi
    _train_py "${dataset}" "${seed}" "${OUTPUT}/base2new/test_${sub}/${tail}" \
        --model-dir "${model_dir}" --load-epoch "${LOADEP}" --eval-only \
        ${METHOD_OPTS[@]+"${METHOD_OPTS[@]}"} DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES "${sub}" "$@"
}

xd_train() {  # [<source>] <seed> [KEY VALUE ...]: 16 shots of all classes of the source (default XD_SOURCE, else imagenet)
    local usage="scripts/${METHOD_DIR}/$(basename "$0") [<source dataset>] <seed> [KEY VALUE ...]   (default source: XD_SOURCE, else imagenet)"
    local source="${XD_SOURCE:-imagenet}"
    if [ $# -ge 2 ] && [ -f "configs/datasets/$1.yaml" ]; then  # the MaPLe / PromptSRC signature: <dataset> <seed>
        source=$1
        shift
    fi
    if [ $# -lt 1 ]; then echo "usage: ${usage}" >&2; exit 2; fi
    local seed=$1
    shift
    require_seed "${seed}" "${usage}"
    require_dataset "${source}"
    _config
    _train_py "${source}" "${seed}" "${OUTPUT}/${source}/${TRAINER}/${CFG}_16shots/seed${seed}" \
        ${METHOD_OPTS[@]+"${METHOD_OPTS[@]}"} DATASET.NUM_SHOTS 16 "$@"
}

xd_test() {  # <dataset> <seed> [KEY VALUE ...]: evaluate the xd_train model on another dataset (all classes)
    if [ $# -lt 2 ]; then echo "usage: scripts/${METHOD_DIR}/xd_test.sh <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
    local dataset=$1 seed=$2 source="${XD_SOURCE:-imagenet}"
    shift 2
    require_seed "${seed}" "scripts/${METHOD_DIR}/xd_test.sh <dataset> <seed> [KEY VALUE ...]"
    require_dataset "${dataset}"
    _config
    _load_epoch "$@"
    local model_dir="${OUTPUT}/${source}/${TRAINER}/${CFG}_16shots/seed${seed}"
    if [ ! -d "${model_dir}" ] && [ "${DRY_RUN:-0}" != 1 ]; then
        echo "No trained model in ${model_dir}: run scripts/${METHOD_DIR}/${XD_TRAIN_SCRIPT:-xd_train.sh} ${seed} first" >&2
        exit 1
    fi
    _train_py "${dataset}" "${seed}" "${OUTPUT}/evaluation/${TRAINER}/${CFG}_16shots/${dataset}/seed${seed}" \
        --model-dir "${model_dir}" --load-epoch "${LOADEP}" --eval-only ${METHOD_OPTS[@]+"${METHOD_OPTS[@]}"} "$@"
}

# Evaluate released weights (the reproduce_* scripts of MaPLe and PromptSRC): <dataset> <seed> <weights dir>.
# Base-to-novel reads <weights dir>/base/seed<seed> and writes test_base/ and test_new/ of the b2n layout.
reproduce_b2n() {
    local dataset seed weights
    _reproduce_args "$@"
    shift 3
    _require_weights "${weights}/base/seed${seed}"
    local sub
    for sub in base new; do
        _train_py "${dataset}" "${seed}" "${OUTPUT}/base2new/test_${sub}/${dataset}/shots_16/${TRAINER}/${CFG}/seed${seed}" \
            --model-dir "${weights}/base/seed${seed}" --load-epoch "${LOADEP}" --eval-only \
            ${METHOD_OPTS[@]+"${METHOD_OPTS[@]}"} DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES "${sub}" "$@"
    done
}

# Cross-dataset / DG: reads <weights dir>/seed<seed>, writes the xd_test layout.
reproduce_xd() {
    local dataset seed weights
    _reproduce_args "$@"
    shift 3
    _require_weights "${weights}/seed${seed}"
    _train_py "${dataset}" "${seed}" "${OUTPUT}/evaluation/${TRAINER}/${CFG}_16shots/${dataset}/seed${seed}" \
        --model-dir "${weights}/seed${seed}" --load-epoch "${LOADEP}" --eval-only ${METHOD_OPTS[@]+"${METHOD_OPTS[@]}"} "$@"
}

# The arguments of both reproduce_* functions: <dataset> <seed> <weights dir> [KEY VALUE ...]. Checks them and sets
# the caller's local dataset, seed and weights (bash scoping), the config and the epoch to load.
_reproduce_args() {
    local usage="scripts/${METHOD_DIR}/$(basename "$0") <dataset> <seed> <weights dir> [KEY VALUE ...]"
    if [ $# -lt 3 ]; then echo "usage: ${usage}" >&2; exit 2; fi
    dataset=$1 seed=$2 weights=$3
    shift 3
    require_seed "${seed}" "${usage}"
    require_dataset "${dataset}"
    _config
    _load_epoch "$@"
}

_require_weights() {
    if [ ! -d "$1" ] && [ "${DRY_RUN:-0}" != 1 ]; then
        echo "No weights in $1: expected the released folder layout (<weights dir>/base/seed<S>/, or <weights dir>/seed<S>/ for cross-dataset)" >&2
        exit 1
    fi
}
