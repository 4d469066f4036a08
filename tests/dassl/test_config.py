"""Config defaults, merge order and merge errors (Dassl c61a1b5 and the upstream extend_cfg; docs/design.md#config-nodes).

yacs checks every override against the default's type, so a default's exact Python type is part of the API:
upstream yaml files and script flags only load if names, values and types match Dassl and upstream ``extend_cfg``.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from yacs.config import CfgNode

from dassl.config import ConfigError, get_cfg_default, merge_cfg_from_file, merge_cfg_from_list
from tests.conftest import REPO_ROOT
from trainers.config import extend_cfg

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def full_cfg() -> CfgNode:
    cfg = get_cfg_default()
    extend_cfg(cfg)
    return cfg


def lookup(cfg: CfgNode, full_key: str):
    node = cfg
    for part in full_key.split("."):
        assert isinstance(node, CfgNode) and part in node, f"config key {full_key} is missing (at {part})"
        node = node[part]
    return node


# (key, default, exact type): the Dassl defaults that upstream trainers and yaml files rely on.
SPEC_DEFAULTS = [
    ("OUTPUT_DIR", "./output", str),
    ("RESUME", "", str),
    ("SEED", -1, int),
    ("USE_CUDA", True, bool),
    ("VERBOSE", True, bool),
    ("INPUT.SIZE", (224, 224), tuple),
    ("INPUT.INTERPOLATION", "bilinear", str),
    ("INPUT.TRANSFORMS", (), tuple),
    ("INPUT.NO_TRANSFORM", False, bool),
    ("INPUT.CROP_PADDING", 4, int),
    ("INPUT.RRCROP_SCALE", (0.08, 1.0), tuple),
    ("DATASET.NUM_SHOTS", -1, int),
    ("DATASET.SUBSAMPLE_CLASSES", "all", str),
    ("DATALOADER.NUM_WORKERS", 4, int),
    ("DATALOADER.K_TRANSFORMS", 1, int),
    ("DATALOADER.RETURN_IMG0", False, bool),
    ("DATALOADER.TRAIN_X.BATCH_SIZE", 32, int),
    ("DATALOADER.TRAIN_X.N_DOMAIN", 0, int),
    ("DATALOADER.TRAIN_X.N_INS", 16, int),
    ("DATALOADER.TRAIN_U.SAME_AS_X", True, bool),
    ("DATALOADER.TEST.SAMPLER", "SequentialSampler", str),
    ("DATALOADER.TEST.BATCH_SIZE", 32, int),
    ("MODEL.INIT_WEIGHTS", "", str),
    ("OPTIM.NAME", "adam", str),
    ("OPTIM.LR", 0.0003, float),
    ("OPTIM.WEIGHT_DECAY", 5e-4, float),
    ("OPTIM.MOMENTUM", 0.9, float),
    ("OPTIM.SGD_DAMPNING", 0, int),
    ("OPTIM.SGD_NESTEROV", False, bool),
    ("OPTIM.LR_SCHEDULER", "single_step", str),
    ("OPTIM.STEPSIZE", (-1,), tuple),
    ("OPTIM.GAMMA", 0.1, float),
    ("OPTIM.MAX_EPOCH", 10, int),
    ("OPTIM.WARMUP_EPOCH", -1, int),
    ("OPTIM.WARMUP_TYPE", "linear", str),
    ("OPTIM.WARMUP_CONS_LR", 1e-5, float),
    ("OPTIM.WARMUP_MIN_LR", 1e-5, float),
    ("OPTIM.WARMUP_RECOUNT", True, bool),
    ("TRAIN.CHECKPOINT_FREQ", 0, int),
    ("TRAIN.PRINT_FREQ", 10, int),
    ("TRAIN.COUNT_ITER", "train_x", str),
    ("TEST.EVALUATOR", "Classification", str),
    ("TEST.PER_CLASS_RESULT", False, bool),
    ("TEST.COMPUTE_CMAT", False, bool),
    ("TEST.NO_TEST", False, bool),
    ("TEST.SPLIT", "test", str),
    ("TEST.FINAL_MODEL", "last_step", str),
    ("TRAINER.MODAL", "base2novel", str),
    ("TRAINER.COOP.N_CTX", 16, int),
    ("TRAINER.MAPLE.N_CTX", 2, int),
    ("TRAINER.MAPLE.PROMPT_DEPTH", 9, int),
]

# Keys Dassl declares that upstream code reads: they must exist; value and type are Dassl c61a1b5's defaults.py.
DASSL_DEFAULTS = [
    ("INPUT.PIXEL_MEAN", [0.485, 0.456, 0.406], list),
    ("INPUT.PIXEL_STD", [0.229, 0.224, 0.225], list),
    ("INPUT.CUTOUT_N", 1, int),
    ("INPUT.CUTOUT_LEN", 16, int),
    ("INPUT.GN_MEAN", 0.0, float),
    ("INPUT.GN_STD", 0.15, float),
    ("INPUT.RANDAUGMENT_N", 2, int),
    ("INPUT.RANDAUGMENT_M", 10, int),
    ("INPUT.COLORJITTER_B", 0.4, float),
    ("INPUT.COLORJITTER_C", 0.4, float),
    ("INPUT.COLORJITTER_S", 0.4, float),
    ("INPUT.COLORJITTER_H", 0.1, float),
    ("INPUT.RGS_P", 0.2, float),
    ("INPUT.GB_P", 0.5, float),
    ("INPUT.GB_K", 21, int),
    ("DATASET.ROOT", "", str),
    ("DATASET.NAME", "", str),
    ("DATASET.SOURCE_DOMAINS", (), tuple),
    ("DATASET.TARGET_DOMAINS", (), tuple),
    ("DATASET.VAL_PERCENT", 0.1, float),
    ("DATASET.ALL_AS_UNLABELED", False, bool),
    ("DATALOADER.TRAIN_X.SAMPLER", "RandomSampler", str),
    ("DATALOADER.TRAIN_U.SAMPLER", "RandomSampler", str),
    ("DATALOADER.TRAIN_U.BATCH_SIZE", 32, int),
    ("DATALOADER.TRAIN_U.N_DOMAIN", 0, int),
    ("DATALOADER.TRAIN_U.N_INS", 16, int),
    ("MODEL.BACKBONE.NAME", "", str),
    ("MODEL.BACKBONE.PRETRAINED", True, bool),
    ("MODEL.HEAD.NAME", "", str),
    ("MODEL.HEAD.HIDDEN_LAYERS", (), tuple),
    ("MODEL.HEAD.ACTIVATION", "relu", str),
    ("MODEL.HEAD.BN", True, bool),
    ("MODEL.HEAD.DROPOUT", 0.0, float),
    ("OPTIM.RMSPROP_ALPHA", 0.99, float),
    ("OPTIM.ADAM_BETA1", 0.9, float),
    ("OPTIM.ADAM_BETA2", 0.999, float),
    ("OPTIM.STAGED_LR", False, bool),
    ("OPTIM.NEW_LAYERS", (), tuple),
    ("OPTIM.BASE_LR_MULT", 0.1, float),
    ("TRAINER.NAME", "", str),
]

# The upstream extend_cfg nodes (PROMPTKD; TEACHER_NAME fixes upstream's "ViT/L-14" typo: docs/design.md#promptkd).
TRAINER_DEFAULTS = [
    ("TRAINER.COOP.N_CTX", 16, int),
    ("TRAINER.COOP.CSC", False, bool),
    ("TRAINER.COOP.CTX_INIT", "", str),
    ("TRAINER.COOP.PREC", "fp16", str),
    ("TRAINER.COOP.CLASS_TOKEN_POSITION", "end", str),
    ("TRAINER.COOP.W", 1.0, float),
    ("TRAINER.COOP.ALPHA", 1.0, float),
    ("TRAINER.COCOOP.N_CTX", 16, int),
    ("TRAINER.COCOOP.CTX_INIT", "", str),
    ("TRAINER.COCOOP.PREC", "fp16", str),
    ("TRAINER.MAPLE.N_CTX", 2, int),
    ("TRAINER.MAPLE.CTX_INIT", "a photo of a", str),
    ("TRAINER.MAPLE.PREC", "fp16", str),
    ("TRAINER.MAPLE.PROMPT_DEPTH", 9, int),
    ("TRAINER.IVLP.N_CTX_VISION", 2, int),
    ("TRAINER.IVLP.N_CTX_TEXT", 2, int),
    ("TRAINER.IVLP.CTX_INIT", "a photo of a", str),
    ("TRAINER.IVLP.PREC", "fp16", str),
    ("TRAINER.IVLP.PROMPT_DEPTH_VISION", 9, int),
    ("TRAINER.IVLP.PROMPT_DEPTH_TEXT", 9, int),
    ("TRAINER.VPT.N_CTX_VISION", 2, int),
    ("TRAINER.VPT.CTX_INIT", "a photo of a", str),
    ("TRAINER.VPT.PREC", "fp16", str),
    ("TRAINER.VPT.PROMPT_DEPTH_VISION", 1, int),
    ("TRAINER.PROMPTSRC.N_CTX_VISION", 4, int),
    ("TRAINER.PROMPTSRC.N_CTX_TEXT", 4, int),
    ("TRAINER.PROMPTSRC.CTX_INIT", "a photo of a", str),
    ("TRAINER.PROMPTSRC.PREC", "fp16", str),
    ("TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", 9, int),
    ("TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", 9, int),
    ("TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT", 25, int),
    ("TRAINER.PROMPTSRC.IMAGE_LOSS_WEIGHT", 10, int),
    ("TRAINER.PROMPTSRC.GPA_MEAN", 15, int),
    ("TRAINER.PROMPTSRC.GPA_STD", 1, int),
    ("TRAINER.PROMPTKD.N_CTX_VISION", 4, int),
    ("TRAINER.PROMPTKD.N_CTX_TEXT", 4, int),
    ("TRAINER.PROMPTKD.CTX_INIT", "a photo of a", str),
    ("TRAINER.PROMPTKD.PREC", "fp16", str),
    ("TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", 9, int),
    ("TRAINER.PROMPTKD.PROMPT_DEPTH_TEXT", 9, int),
    ("TRAINER.PROMPTKD.PROJECT_LAYER", 2, int),
    ("TRAINER.PROMPTKD.CE_WEIGHT", 0.0, float),
    ("TRAINER.PROMPTKD.KD_WEIGHT", 1.0, float),
    ("TRAINER.PROMPTKD.TEMPERATURE", 1.0, float),
    ("TRAINER.PROMPTKD.TEACHER_NAME", "ViT-L/14", str),
]

# Keys upstream trainers read by node (``COOP.{CSC, CTX_INIT, ...}``, ``IVLP.{…}``, ``PROMPTKD.*``) are covered above.
EXISTENCE_ONLY = [
    "DATASET.SUBSAMPLE_CLASSES",
    "TRAINER.MODAL",
    "TRAINER.COCOOP.N_CTX",
    "TRAINER.IVLP.N_CTX_VISION",
]


def _ids(table):
    return [row[0] for row in table]


@pytest.mark.parametrize(("key", "value", "typ"), SPEC_DEFAULTS, ids=_ids(SPEC_DEFAULTS))
def test_spec_default_value_and_exact_type(key, value, typ):
    got = lookup(full_cfg(), key)
    assert type(got) is typ, f"{key}: type {type(got).__name__}, expected {typ.__name__}"
    assert got == value


@pytest.mark.parametrize(("key", "value", "typ"), DASSL_DEFAULTS, ids=_ids(DASSL_DEFAULTS))
def test_dassl_default_value_and_exact_type(key, value, typ):
    got = lookup(full_cfg(), key)
    assert type(got) is typ, f"{key}: type {type(got).__name__}, expected {typ.__name__}"
    assert got == value


@pytest.mark.parametrize(("key", "value", "typ"), TRAINER_DEFAULTS, ids=_ids(TRAINER_DEFAULTS))
def test_trainer_default_value_and_exact_type(key, value, typ):
    got = lookup(full_cfg(), key)
    assert type(got) is typ, f"{key}: type {type(got).__name__}, expected {typ.__name__}"
    assert got == value


@pytest.mark.parametrize("key", EXISTENCE_ONLY)
def test_key_exists(key):
    lookup(full_cfg(), key)


def test_engine_defaults_leave_protocol_keys_to_extend_cfg():
    """SUBSAMPLE_CLASSES, MODAL and the trainer nodes come from extend_cfg (train.py), not the engine."""
    cfg = get_cfg_default()
    assert "SUBSAMPLE_CLASSES" not in cfg.DATASET
    assert "MODAL" not in cfg.TRAINER
    assert "PROMPTKD" not in cfg.TRAINER
    extend_cfg(cfg)
    assert cfg.TRAINER.PROMPTKD.KD_WEIGHT == 1.0


@pytest.mark.parametrize("key", ["DATASET.NUM_LABELED", "DATASET.STL10_FOLD", "DATASET.CIFAR_C_TYPE", "DATASET.CIFAR_C_LEVEL"])
def test_dassl_keys_no_dataset_here_reads_are_not_declared(key):
    """Dassl's semi-supervised / CIFAR-C / STL-10 keys: no dataset of ours and no upstream yaml uses them."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        merge_cfg_from_list(full_cfg(), [key, "1"])


def test_no_test_is_declared_once_by_the_engine():
    cfg = get_cfg_default()
    assert cfg.TEST.NO_TEST is False
    assert "NO_TEST" not in extend_cfg(CfgNode({"DATASET": {}, "TRAINER": {}, "MODEL": {"BACKBONE": {}}})).get("TEST", {})


def test_get_cfg_default_returns_an_independent_mutable_copy():
    a = get_cfg_default()
    assert not a.is_frozen()
    a.OPTIM.LR = 123.0
    a.INPUT.PIXEL_MEAN.append(0.0)
    b = get_cfg_default()
    assert b.OPTIM.LR == 0.0003
    assert b.INPUT.PIXEL_MEAN == [0.485, 0.456, 0.406]


# --------------------------------------------------------------------------------------------------
# train.setup_cfg: dataset yaml -> method yaml -> flags -> KEY VALUE opts
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_mod():
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import train

    return train


def write_yaml(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


def setup(train_mod, argv: list[str]) -> CfgNode:
    return train_mod.setup_cfg(train_mod.build_parser().parse_args(argv))


@pytest.fixture
def two_yamls(tmp_path):
    dataset_yaml = write_yaml(
        tmp_path / "dataset.yaml",
        """\
        DATASET:
          NAME: "FromDataset"
          ROOT: "/from/dataset/yaml"
        OPTIM:
          MAX_EPOCH: 3
          LR: 0.1
          GAMMA: 0.5
        OUTPUT_DIR: "from_dataset"
        """,
    )
    method_yaml = write_yaml(
        tmp_path / "method.yaml",
        """\
        DATASET:
          NAME: "FromMethod"
        OPTIM:
          MAX_EPOCH: 4
          LR: 0.2
        OUTPUT_DIR: "from_method"
        TRAINER:
          NAME: "FromMethodYaml"
        """,
    )
    return dataset_yaml, method_yaml


def test_method_yaml_overrides_dataset_yaml(train_mod, two_yamls):
    dataset_yaml, method_yaml = two_yamls
    cfg = setup(train_mod, ["--dataset-config-file", dataset_yaml, "--config-file", method_yaml])
    assert cfg.DATASET.NAME == "FromMethod"
    assert cfg.OPTIM.MAX_EPOCH == 4
    assert cfg.OPTIM.LR == 0.2
    assert cfg.OUTPUT_DIR == "from_method"
    assert cfg.TRAINER.NAME == "FromMethodYaml"
    # keys only the dataset yaml sets survive
    assert cfg.OPTIM.GAMMA == 0.5
    assert cfg.DATASET.ROOT == "/from/dataset/yaml"
    assert cfg.is_frozen()


def test_flags_override_yaml_and_opts_override_flags(train_mod, two_yamls):
    dataset_yaml, method_yaml = two_yamls
    flags = [
        "--dataset-config-file", dataset_yaml,
        "--config-file", method_yaml,
        "--root", "/from/flag",
        "--output-dir", "from_flag",
        "--seed", "7",
        "--trainer", "FromFlag",
    ]  # fmt: skip
    cfg = setup(train_mod, flags)
    assert cfg.DATASET.ROOT == "/from/flag"
    assert cfg.OUTPUT_DIR == "from_flag"
    assert cfg.SEED == 7
    assert cfg.TRAINER.NAME == "FromFlag"
    assert cfg.OPTIM.MAX_EPOCH == 4  # no flag for it: the method yaml still wins

    opts = ["OUTPUT_DIR", "from_opts", "SEED", "9", "TRAINER.NAME", "FromOpts", "OPTIM.MAX_EPOCH", "5",
            "DATASET.ROOT", "/from/opts"]  # fmt: skip
    cfg = setup(train_mod, flags + opts)
    assert cfg.OUTPUT_DIR == "from_opts"
    assert cfg.SEED == 9
    assert cfg.TRAINER.NAME == "FromOpts"
    assert cfg.OPTIM.MAX_EPOCH == 5
    assert cfg.DATASET.ROOT == "/from/opts"
    assert cfg.DATASET.NAME == "FromMethod"
    assert cfg.OPTIM.GAMMA == 0.5


def test_promptkd_script_overrides(train_mod):
    """The opts of scripts/promptkd/base2new_train.sh load with their intended types."""
    cfg = setup(
        train_mod,
        ["DATASET.NUM_SHOTS", "0", "TRAINER.MODAL", "base2novel", "TRAINER.PROMPTKD.TEMPERATURE", "1.0",
         "TRAINER.PROMPTKD.KD_WEIGHT", "1000.0", "DATASET.SUBSAMPLE_CLASSES", "all"],
    )  # fmt: skip
    assert cfg.DATASET.NUM_SHOTS == 0 and type(cfg.DATASET.NUM_SHOTS) is int
    assert cfg.TRAINER.PROMPTKD.KD_WEIGHT == 1000.0 and type(cfg.TRAINER.PROMPTKD.KD_WEIGHT) is float
    assert cfg.TRAINER.MODAL == "base2novel"


# --------------------------------------------------------------------------------------------------
# shipped yaml files
# --------------------------------------------------------------------------------------------------

SHIPPED_YAMLS = sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "configs").rglob("*.yaml"))


def test_configs_folder_has_yaml_files():
    assert "configs/datasets/caltech101.yaml" in SHIPPED_YAMLS
    assert "configs/trainers/CoOp/vit_b16.yaml" in SHIPPED_YAMLS


@pytest.mark.parametrize("rel", SHIPPED_YAMLS)
def test_every_shipped_yaml_loads_on_the_defaults(rel):
    path = REPO_ROOT / rel
    cfg = merge_cfg_from_file(full_cfg(), str(path))
    defaults = full_cfg()
    # every value keeps the exact type of its default (tuple/list may swap only where the default says so)
    loaded = yaml.safe_load(path.read_text()) or {}

    def walk(mapping, prefix=""):
        for key, value in mapping.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    for full_key in walk(loaded):
        got, default = lookup(cfg, full_key), lookup(defaults, full_key)
        assert type(got) is type(default), f"{rel}: {full_key} became {type(got).__name__}"


def test_coop_yaml_values_and_types():
    cfg = merge_cfg_from_file(full_cfg(), str(REPO_ROOT / "configs/trainers/CoOp/vit_b16.yaml"))
    assert cfg.INPUT.SIZE == (224, 224) and type(cfg.INPUT.SIZE) is tuple
    assert cfg.INPUT.INTERPOLATION == "bicubic"
    assert cfg.INPUT.TRANSFORMS == ("random_resized_crop", "random_flip", "normalize")
    assert type(cfg.INPUT.TRANSFORMS) is tuple
    assert cfg.INPUT.PIXEL_MEAN == CLIP_MEAN and cfg.INPUT.PIXEL_STD == CLIP_STD
    assert cfg.OPTIM.NAME == "sgd" and cfg.OPTIM.LR == 0.002 and cfg.OPTIM.MAX_EPOCH == 200
    assert cfg.OPTIM.WARMUP_CONS_LR == 1e-5 and type(cfg.OPTIM.WARMUP_CONS_LR) is float
    assert cfg.DATALOADER.TEST.BATCH_SIZE == 100 and cfg.DATALOADER.NUM_WORKERS == 8
    assert cfg.MODEL.BACKBONE.NAME == "ViT-B/16"


def test_dataset_yaml_sets_the_registered_name():
    cfg = merge_cfg_from_file(full_cfg(), str(REPO_ROOT / "configs/datasets/caltech101.yaml"))
    assert cfg.DATASET.NAME == "Caltech101"


def test_exponent_without_dot_in_yaml_becomes_float(tmp_path):
    text = "OPTIM:\n  LR: 2e-3\n  WARMUP_MIN_LR: 1e-6\n"
    assert yaml.safe_load(text)["OPTIM"]["LR"] == "2e-3"  # PyYAML (YAML 1.1) reads it as a string
    cfg = merge_cfg_from_file(full_cfg(), write_yaml(tmp_path / "lr.yaml", text))
    assert cfg.OPTIM.LR == 2e-3 and type(cfg.OPTIM.LR) is float
    assert cfg.OPTIM.WARMUP_MIN_LR == 1e-6 and type(cfg.OPTIM.WARMUP_MIN_LR) is float


# --------------------------------------------------------------------------------------------------
# coercion and errors
# --------------------------------------------------------------------------------------------------


def test_int_for_float_key_is_accepted_as_float():
    cfg = merge_cfg_from_list(full_cfg(), ["TRAINER.PROMPTKD.KD_WEIGHT", "1000", "OPTIM.LR", "1"])
    assert cfg.TRAINER.PROMPTKD.KD_WEIGHT == 1000.0 and type(cfg.TRAINER.PROMPTKD.KD_WEIGHT) is float
    assert cfg.OPTIM.LR == 1.0 and type(cfg.OPTIM.LR) is float


def test_int_for_float_key_in_yaml_is_accepted_as_float(tmp_path):
    path = write_yaml(tmp_path / "kd.yaml", "TRAINER:\n  PROMPTKD:\n    KD_WEIGHT: 200\n")
    cfg = merge_cfg_from_file(full_cfg(), path)
    assert cfg.TRAINER.PROMPTKD.KD_WEIGHT == 200.0 and type(cfg.TRAINER.PROMPTKD.KD_WEIGHT) is float


def test_list_and_tuple_convert_to_the_default_type():
    cfg = merge_cfg_from_list(full_cfg(), ["INPUT.SIZE", "[32, 32]", "INPUT.PIXEL_MEAN", "(0.5, 0.5, 0.5)"])
    assert cfg.INPUT.SIZE == (32, 32) and type(cfg.INPUT.SIZE) is tuple
    assert cfg.INPUT.PIXEL_MEAN == [0.5, 0.5, 0.5] and type(cfg.INPUT.PIXEL_MEAN) is list


def test_string_values_that_do_not_parse_stay_strings():
    cfg = merge_cfg_from_list(full_cfg(), ["TRAINER.PROMPTKD.TEACHER_NAME", "ViT-B/16", "OPTIM.NAME", "sgd"])
    assert cfg.TRAINER.PROMPTKD.TEACHER_NAME == "ViT-B/16"
    assert cfg.OPTIM.NAME == "sgd"


@pytest.mark.parametrize(
    ("key", "value", "expected_type"),
    [
        ("OPTIM.MAX_EPOCH", "abc", "int"),
        ("TRAINER.COOP.CSC", "3", "bool"),
        ("OPTIM.MAX_EPOCH", "2.5", "int"),  # a lossy float -> int is not coerced
        ("TRAINER.PROMPTSRC.GPA_MEAN", "15.0", "int"),
        ("OPTIM.LR", "True", "float"),  # bool is not a number here
        ("TRAINER.COOP.N_CTX", "False", "int"),
        ("INPUT.SIZE", "224", "tuple"),
    ],
)
def test_type_mismatch_names_key_type_and_value(key, value, expected_type):
    with pytest.raises(ConfigError) as info:
        merge_cfg_from_list(full_cfg(), [key, value])
    message = str(info.value)
    assert key in message
    assert expected_type in message
    assert value in message


def test_type_mismatch_in_yaml_names_the_file(tmp_path):
    path = write_yaml(tmp_path / "bad.yaml", "OPTIM:\n  MAX_EPOCH: abc\n")
    with pytest.raises(ConfigError) as info:
        merge_cfg_from_file(full_cfg(), path)
    message = str(info.value)
    assert "OPTIM.MAX_EPOCH" in message and "int" in message and "abc" in message
    assert path in message


def test_unknown_key_suggests_the_close_match():
    with pytest.raises(ConfigError) as info:
        merge_cfg_from_list(full_cfg(), ["OPTIM.LRR", "0.1"])
    message = str(info.value)
    assert "OPTIM.LRR" in message
    assert "OPTIM.LR" in message.replace("OPTIM.LRR", "")


def test_unknown_nested_key_and_unknown_node():
    with pytest.raises(ConfigError, match="TRAINER.PROMPTKD.KD_WEIGHTT"):
        merge_cfg_from_list(full_cfg(), ["TRAINER.PROMPTKD.KD_WEIGHTT", "1.0"])
    with pytest.raises(ConfigError, match="NOPE.LR"):
        merge_cfg_from_list(full_cfg(), ["NOPE.LR", "1.0"])
    # a leaf used as a node
    with pytest.raises(ConfigError, match="OPTIM.LR.X"):
        merge_cfg_from_list(full_cfg(), ["OPTIM.LR.X", "1.0"])


def test_unknown_key_in_yaml(tmp_path):
    path = write_yaml(tmp_path / "typo.yaml", "OPTIM:\n  MAX_EPOCHS: 5\n")
    with pytest.raises(ConfigError) as info:
        merge_cfg_from_file(full_cfg(), path)
    message = str(info.value)
    assert "OPTIM.MAX_EPOCHS" in message and "OPTIM.MAX_EPOCH" in message.replace("MAX_EPOCHS", "")


def test_setting_a_whole_node_is_an_error():
    with pytest.raises(ConfigError, match="OPTIM"):
        merge_cfg_from_list(full_cfg(), ["OPTIM", "1"])


def test_odd_length_opts_list_errors():
    with pytest.raises(ConfigError, match="pairs"):
        merge_cfg_from_list(full_cfg(), ["OPTIM.LR", "0.1", "OPTIM.MAX_EPOCH"])


def test_bad_key_after_good_pairs_is_reported():
    with pytest.raises(ConfigError, match="OPTIM.LRR"):
        merge_cfg_from_list(full_cfg(), ["OPTIM.LR", "0.1", "OPTIM.LRR", "0.1"])


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        merge_cfg_from_file(full_cfg(), str(tmp_path / "nope.yaml"))


def test_frozen_config_cannot_be_merged():
    cfg = full_cfg()
    cfg.freeze()
    with pytest.raises(ConfigError, match="frozen"):
        merge_cfg_from_list(cfg, ["OPTIM.LR", "0.1"])


def test_setup_cfg_raises_config_error_for_bad_opts(train_mod):
    with pytest.raises(ConfigError, match="OPTIM.LRR"):
        setup(train_mod, ["OPTIM.LRR", "0.1"])
    with pytest.raises(ConfigError):
        setup(train_mod, ["OPTIM.LR"])


def test_main_reports_unknown_key_without_traceback(train_mod, tmp_path, capsys):
    rc = train_mod.main(["--output-dir", str(tmp_path / "out"), "OPTIM.LRR", "0.1"])
    assert rc == 2
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1
    assert "OPTIM.LRR" in error_lines[0] and "OPTIM.LR" in error_lines[0].replace("OPTIM.LRR", "")
    assert "Traceback" not in err


def test_main_reports_type_mismatch_without_traceback(train_mod, tmp_path, capsys):
    rc = train_mod.main(["--output-dir", str(tmp_path / "out"), "TRAINER.COOP.CSC", "3"])
    assert rc == 2
    err = capsys.readouterr().err
    assert any(line.startswith("Error:") and "TRAINER.COOP.CSC" in line for line in err.splitlines())
    assert "Traceback" not in err
