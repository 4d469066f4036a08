"""A new method is one file (plus its yaml) outside the repository: ``train.py --plugin`` imports it, its trainer and
its config node register themselves, and the run is like any other (``dassl/utils/plugins.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from yacs.config import CfgNode

from dassl.config import ConfigError, get_cfg_default, merge_cfg_from_file
from dassl.engine import TRAINER_REGISTRY
from dassl.utils.plugins import PLUGINS_ENV, PluginError, load_plugin
from tests.conftest import REPO_ROOT, USE_CUDA_OPT, make_tiny_demo
from trainers.base import PromptTrainer
from trainers.config import ConfigNodeConflictError, extend_cfg

# A linear probe on the frozen CLIP image features, its classifier initialised from the class-name prompts
# (a zero-shot start), with a config node of its own.
METHOD = '''
"""Linear probe: a linear classifier on frozen CLIP image features, started from the zero-shot text features."""

import torch.nn as nn
import torch.nn.functional as F
from yacs.config import CfgNode

from dassl.engine import TRAINER_REGISTRY
from trainers.base import PromptTrainer
from trainers.prompting import class_text_features


class ProbeCLIP(nn.Module):
    def __init__(self, clip_model, text_features, scale: float) -> None:
        super().__init__()
        self.visual, self.scale = clip_model.visual, scale
        self.classifier = nn.Parameter(text_features.clone().float())  # (n_cls, d)

    def forward(self, image):
        features = F.normalize(self.visual(image), dim=-1)
        return self.scale * features @ F.normalize(self.classifier, dim=-1).t()


@TRAINER_REGISTRY.register()
class MyMethod(PromptTrainer):
    CONFIG_NODE = "MYMETHOD"
    MODEL_NAME = "probe"

    @classmethod
    def node_defaults(cls) -> CfgNode:
        return CfgNode({"PREC": "fp16", "SCALE": 30.0, "TEMPLATE": "a photo of a {}."})

    def build_model(self) -> None:
        clip_model = self.load_backbone().to(self.device)
        node = self.method_cfg
        text = class_text_features(clip_model, self.dm.dataset.classnames, [node.TEMPLATE])
        model = ProbeCLIP(clip_model, text, node.SCALE)
        for name, p in model.named_parameters():
            p.requires_grad_(name == "classifier")
        self.register_prompt_model(model)
'''

YAML = """
DATALOADER:
  TRAIN_X:
    BATCH_SIZE: 8
INPUT:
  SIZE: (32, 32)
  PIXEL_MEAN: [0.48145466, 0.4578275, 0.40821073]
  PIXEL_STD: [0.26862954, 0.26130258, 0.27577711]
  TRANSFORMS: ["random_flip", "normalize"]
OPTIM:
  NAME: "sgd"
  LR: 0.01
  MAX_EPOCH: 2
  LR_SCHEDULER: "cosine"
TRAINER:
  MYMETHOD:
    PREC: "fp32"
    SCALE: 50.0
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    return make_tiny_demo(tmp_path_factory.mktemp("new_method"), layers=2, seed=3)


def write_method(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "my_method.py").write_text(textwrap.dedent(METHOD).lstrip())
    (folder / "my_method.yaml").write_text(YAML.lstrip())
    return folder / "my_method.py", folder / "my_method.yaml"


def train_command(world: tuple[Path, Path], config: Path, out: Path, *extra: str) -> list[str]:
    data, ckpt = world
    return [
        sys.executable, str(REPO_ROOT / "train.py"), *extra, "--trainer", "MyMethod", "--root", str(data),
        "--seed", "1", "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
        "--config-file", str(config), "--output-dir", str(out),
        "MODEL.BACKBONE.PATH", str(ckpt), "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "2",
        "DATASET.SUBSAMPLE_CLASSES", "base", "USE_CUDA", USE_CUDA_OPT,
    ]  # fmt: skip


def run_train(command: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k != PLUGINS_ENV}, **(env or {})}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_method_in_a_single_file_trains_through_train_py(world, tmp_path):
    method, config = write_method(tmp_path / "elsewhere")
    out = tmp_path / "run"
    proc = run_train(train_command(world, config, out, "--plugin", str(method)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    assert results["trainer"] == "MyMethod"
    assert 0.0 <= results["final"]["accuracy"] <= 100.0 and results["final"]["epoch"] == 2
    frozen = CfgNode.load_cfg((out / "config.yaml").read_text())
    node = frozen.TRAINER.MYMETHOD
    assert (node.PREC, node.SCALE, node.TEMPLATE) == ("fp32", 50.0, "a photo of a {}.")
    assert frozen.TRAINER.COOP.N_CTX == 16  # the shipped methods' nodes are there as always
    assert (out / "probe" / "model.pth.tar-2").is_file()  # MODEL_NAME is the checkpoint folder


def test_the_environment_variable_loads_the_plugin_and_a_missing_one_is_an_error(world, tmp_path):
    method, config = write_method(tmp_path / "elsewhere")
    out = tmp_path / "run"
    env = {PLUGINS_ENV: f"{tmp_path / 'not_there.py'}{os.pathsep}{method}"}
    proc = run_train(train_command(world, config, out), cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert "Error: plugin file not found:" in proc.stderr and "not_there.py" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = run_train(train_command(world, config, out), cwd=tmp_path, env={PLUGINS_ENV: str(method)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads((out / "results.json").read_text())["trainer"] == "MyMethod"


def test_without_the_plugin_its_yaml_keys_are_unknown(tmp_path):
    _, config = write_method(tmp_path)
    cfg = extend_cfg(get_cfg_default())
    with pytest.raises(ConfigError, match="TRAINER.MYMETHOD"):
        merge_cfg_from_file(cfg, str(config))


def test_a_plugin_with_a_syntax_error_names_the_file_and_line(tmp_path):
    broken = tmp_path / "broken_method.py"
    broken.write_text("x = 1\ndef oops(:\n")
    with pytest.raises(PluginError, match=r"broken_method\.py has a syntax error at line 2"):
        load_plugin(str(broken))
    with pytest.raises(PluginError, match="plugin module 'no_such_plugin_module' not found"):
        load_plugin("no_such_plugin_module")


@pytest.fixture
def registered():
    """Register trainer classes for one test and remove them afterwards."""
    added: list[str] = []

    def register(cls):
        TRAINER_REGISTRY.register(cls)
        added.append(cls.__name__)
        return cls

    yield register
    for name in added:
        TRAINER_REGISTRY._obj_map.pop(name, None)


def test_extend_cfg_reads_the_registry_when_called(registered):
    class LateMethod(PromptTrainer):
        CONFIG_NODE = "LATE"

        @classmethod
        def node_defaults(cls) -> CfgNode:
            return CfgNode({"PREC": "fp32", "STEPS": 3})

    assert "LATE" not in extend_cfg(get_cfg_default()).TRAINER
    registered(LateMethod)
    cfg = extend_cfg(get_cfg_default())
    assert cfg.TRAINER.LATE.STEPS == 3 and isinstance(cfg.TRAINER.LATE.STEPS, int)


def test_trainers_sharing_a_node_must_agree_on_its_defaults(registered):
    class CoOpWithOtherDefaults(PromptTrainer):
        CONFIG_NODE = "COOP"  # CoOp's node, with another default for one of its keys

        @classmethod
        def node_defaults(cls) -> CfgNode:
            return CfgNode({"PREC": "fp16", "N_CTX": 4, "EXTRA": True})

    registered(CoOpWithOtherDefaults)
    with pytest.raises(ConfigNodeConflictError) as err:
        extend_cfg(get_cfg_default())
    message = str(err.value)
    assert "TRAINER.COOP.N_CTX" in message and "CoOpWithOtherDefaults declares the default 4 (int)" in message
    assert "CoOp declares 16 (int)" in message and "its own CONFIG_NODE" in message


def test_a_prompt_trainer_without_a_config_node_is_told_to_set_one():
    class Nameless(PromptTrainer):
        pass

    with pytest.raises(ConfigError, match=r'Nameless sets no CONFIG_NODE.*CONFIG_NODE = "NAMELESS"'):
        Nameless(extend_cfg(get_cfg_default()))
    assert Nameless.config_defaults() == {}


def test_the_sweep_and_parse_results_take_a_plugin_method_without_any_other_file(world, tmp_path):
    """The same single file + yaml through tools/sweep.py (scripts/plugin/: base-to-novel train and novel test)
    and tools/parse_results.py, which finds the method by what its results.json records."""
    from tools import parse_results

    data, ckpt = world
    method, config = write_method(tmp_path / "elsewhere")
    out = tmp_path / "output"
    command = [
        sys.executable, str(REPO_ROOT / "tools" / "sweep.py"), "--plugin", str(method), "--plugin-config", str(config),
        "--methods", "MyMethod", "--datasets", "demo", "--seeds", "1", "--data", str(data), "--output", str(out),
        "--opts", "MODEL.BACKBONE.PATH", str(ckpt), "DATALOADER.NUM_WORKERS", "0", "USE_CUDA", USE_CUDA_OPT,
    ]  # fmt: skip
    proc = run_train(command, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Sweep: 2 script calls, 0 failed" in proc.stdout

    (experiment,) = parse_results.collect(out / "base2new")
    assert experiment.trainer == "MyMethod" and experiment.name == "MyMethod/my_method [16-shot]"
    assert experiment.protocol == "base2novel"
    (seed,) = experiment.datasets[0].seeds
    assert seed.base is not None and seed.novel is not None and seed.hm is not None
    assert "MyMethod/my_method [16-shot]" in proc.stdout  # the sweep's closing table
