"""The MaPLe, IVLP, VPT and PromptSRC (ViT-B/16 baseline) run scripts on the demo data: base-to-novel train -> test on the novel classes from the
train script's checkpoint, cross-dataset train -> evaluate, in the upstream output scheme.

Every script runs for real in bash. ``PYTHON`` is a stand-in interpreter that records the ``train.py`` command
line and runs any other python call (the load-epoch one-liner) normally; the test then runs the recorded
command in this process (``train.run``), so the interpreter start-up (~6 s of imports) is not paid 12 times.
One test runs a script with the real interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT, USE_CUDA_OPT, make_tiny_demo
from tests.trainers.script_runner import make_recorder, option, replay, script

# script folder, trainer, registered model (checkpoint folder), B2N config, XD config, depth keys
METHODS = {
    "maple": ("MaPLe", "MultiModalPromptLearner", "vit_b16_c2_ep5_batch4_2ctx",
              "vit_b16_c2_ep5_batch4_2ctx_cross_datasets", ["TRAINER.MAPLE.PROMPT_DEPTH"]),
    "ivlp": ("IVLP", "VLPromptLearner", "vit_b16_c2_ep5_batch4_2+2ctx", "vit_b16_c2_ep5_batch4_2+2ctx",
             ["TRAINER.IVLP.PROMPT_DEPTH_TEXT", "TRAINER.IVLP.PROMPT_DEPTH_VISION"]),
    "vpt": ("VPT", "prompt_learner", "vit_b16_c2_ep5_batch4_4", "vit_b16_c2_ep5_batch4_4",
            ["TRAINER.VPT.PROMPT_DEPTH_VISION"]),
    "promptsrc": ("PromptSRC", "VLPromptLearner", "vit_b16_c2_ep20_batch4_4+4ctx",
                  "vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets",
                  ["TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION"]),
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("deep_scripts")
    data, ckpt = make_tiny_demo(root, layers=4, text_layers=4, seed=24)
    return {"data": data, "ckpt": ckpt, "recorder": make_recorder(root)}


def tiny_opts(assets, method: str) -> list[str]:
    trainer, *_, depth_keys = METHODS[method]
    opts = [
        "MODEL.BACKBONE.PATH", str(assets["ckpt"]), "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "1",
        "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "2", f"TRAINER.{trainer.upper()}.PREC", "fp32",
        "USE_CUDA", USE_CUDA_OPT,
    ]  # fmt: skip
    for key in depth_keys:
        opts += [key, "3"]
    if method == "promptsrc":  # Gaussian prompt aggregation over the one epoch
        opts += ["TRAINER.PROMPTSRC.GPA_MEAN", "1", "TRAINER.PROMPTSRC.GPA_STD", "1"]
    return opts








def assert_same_trainable_tensors(trained, evaluated, model_name: str) -> None:
    saved, loaded = trained.model_state_dict(model_name), evaluated.model_state_dict(model_name)
    assert saved and set(saved) == set(loaded)
    for key, value in saved.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("method", list(METHODS))
def test_base2new_and_cross_dataset_scripts_on_the_demo_data(assets, tmp_path, monkeypatch, method):
    trainer, model_name, b2n_cfg, xd_cfg, _ = METHODS[method]
    out = tmp_path / "output"
    opts = tiny_opts(assets, method)

    # base-to-novel: 16 shots (2 here) of the base classes -> the novel classes, from the last epoch's checkpoint
    tail = f"demo/shots_16/{trainer}/{b2n_cfg}/seed1"
    _, argv = script(assets, out, f"scripts/{method}/base2new_train.sh", "demo", "1", *opts)
    assert option(argv, "--output-dir") == str(out / "base2new/train_base" / tail)
    assert option(argv, "--trainer") == trainer
    assert option(argv, "--config-file") == f"configs/trainers/{trainer}/{b2n_cfg}.yaml"
    trained = replay(argv, monkeypatch)
    assert (out / "base2new/train_base" / tail / model_name / "model.pth.tar-1").is_file()

    _, argv = script(assets, out, f"scripts/{method}/base2new_test.sh", "demo", "1", *opts)
    assert option(argv, "--output-dir") == str(out / "base2new/test_new" / tail)
    assert option(argv, "--model-dir") == str(out / "base2new/train_base" / tail)
    assert option(argv, "--load-epoch") == "1" and "--eval-only" in argv  # the epoch the run trained for
    evaluated = replay(argv, monkeypatch)
    assert (out / "base2new/test_new" / tail / "results.json").is_file()
    assert_same_trainable_tensors(trained, evaluated, model_name)
    names, trained_names = evaluated.dm.dataset.classnames, trained.dm.dataset.classnames
    assert len(names) == len(trained_names) == 6 and set(names).isdisjoint(trained_names)

    # cross-dataset: all classes of XD_SOURCE (demo here, imagenet by default) -> all classes of a target
    xd_dir = out / "demo" / trainer / f"{xd_cfg}_16shots" / "seed1"
    _, argv = script(assets, out, f"scripts/{method}/xd_train.sh", "1", *opts, XD_SOURCE="demo")
    assert option(argv, "--output-dir") == str(xd_dir)
    assert option(argv, "--config-file") == f"configs/trainers/{trainer}/{xd_cfg}.yaml"
    trained = replay(argv, monkeypatch)
    assert (xd_dir / model_name / "model.pth.tar-1").is_file()

    eval_dir = out / "evaluation" / trainer / f"{xd_cfg}_16shots" / "demo" / "seed1"
    _, argv = script(assets, out, f"scripts/{method}/xd_test.sh", "demo", "1", *opts, XD_SOURCE="demo")
    assert option(argv, "--output-dir") == str(eval_dir)
    assert option(argv, "--model-dir") == str(xd_dir)
    assert option(argv, "--load-epoch") == "1" and "--eval-only" in argv
    evaluated = replay(argv, monkeypatch)
    assert (eval_dir / "results.json").is_file()
    assert_same_trainable_tensors(trained, evaluated, model_name)
    assert len(evaluated.dm.dataset.classnames) == 12


@pytest.mark.parametrize(
    ("method", "args", "config", "epoch"),
    [
        ("maple", ["base2new_test.sh", "demo", "1"], "vit_b16_c2_ep5_batch4_2ctx", "5"),
        ("maple", ["xd_test.sh", "demo", "1"], "vit_b16_c2_ep5_batch4_2ctx_cross_datasets", "2"),
        ("ivlp", ["base2new_test.sh", "demo", "1"], "vit_b16_c2_ep5_batch4_2+2ctx", "5"),
        ("ivlp", ["xd_test.sh", "demo", "1"], "vit_b16_c2_ep5_batch4_2+2ctx", "5"),
        ("vpt", ["base2new_test.sh", "demo", "1"], "vit_b16_c2_ep5_batch4_4", "5"),
        ("vpt", ["xd_test.sh", "demo", "1"], "vit_b16_c2_ep5_batch4_4", "5"),
    ],
)
def test_test_scripts_load_the_epoch_the_config_trains_for(assets, tmp_path, method, args, config, epoch):
    trainer = METHODS[method][0]
    b2n = args[0].startswith("base2new")
    model_dir = (
        f"base2new/train_base/demo/shots_16/{trainer}/{config}/seed1"
        if b2n
        else f"imagenet/{trainer}/{config}_16shots/seed1"
    )
    (tmp_path / model_dir).mkdir(parents=True)
    name = f"scripts/{method}/{args[0]}"
    _, argv = script(assets, tmp_path, name, *args[1:])
    assert option(argv, "--config-file") == f"configs/trainers/{trainer}/{config}.yaml"
    assert option(argv, "--load-epoch") == epoch
    _, argv = script(assets, tmp_path, name, *args[1:], "OPTIM.MAX_EPOCH", "3")
    assert option(argv, "--load-epoch") == "3"
    _, argv = script(assets, tmp_path, name, *args[1:], LOADEP="7")
    assert option(argv, "--load-epoch") == "7"


def test_upstream_defaults_and_switches(assets, tmp_path):
    _, argv = script(assets, tmp_path, "scripts/maple/base2new_train.sh", "caltech101", "2")
    assert argv[-4:] == ["DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base"]
    assert (
        option(argv, "--seed") == "2"
        and option(argv, "--dataset-config-file") == "configs/datasets/caltech101.yaml"
    )
    _, argv = script(assets, tmp_path, "scripts/vpt/xd_train.sh", "3")
    assert option(argv, "--dataset-config-file") == "configs/datasets/imagenet.yaml"  # XD_SOURCE default
    assert option(argv, "--output-dir") == f"{tmp_path}/imagenet/VPT/vit_b16_c2_ep5_batch4_4_16shots/seed3"
    assert argv[-2:] == ["DATASET.NUM_SHOTS", "16"]
    cfg = "vit_b16_c2_ep20_batch4_4+4ctx"
    _, argv = script(assets, tmp_path, "scripts/ivlp/base2new_train.sh", "dtd", "1", CFG=cfg)
    assert option(argv, "--config-file") == f"configs/trainers/IVLP/{cfg}.yaml"
    (tmp_path / f"base2new/train_base/dtd/shots_16/IVLP/{cfg}/seed1").mkdir(parents=True)
    _, argv = script(assets, tmp_path, "scripts/ivlp/base2new_test.sh", "dtd", "1", CFG=cfg, SUB="base")
    assert option(argv, "--load-epoch") == "20"
    assert option(argv, "--output-dir") == f"{tmp_path}/base2new/test_base/dtd/shots_16/IVLP/{cfg}/seed1"
    assert argv[-1] == "base"


def test_scripts_refuse_bad_arguments(assets, tmp_path):
    env = dict(
        os.environ, OUTPUT=str(tmp_path), PYTHON=str(assets["recorder"]), RECORD_ARGV=str(tmp_path / "argv")
    )
    for args, code in (
        (["scripts/maple/base2new_train.sh", "demo"], 2),  # no seed
        (["scripts/ivlp/xd_train.sh", "imagenet", "1.5"], 2),  # a seed is a whole number
        (["scripts/vpt/xd_test.sh", "1"], 2),
        (["scripts/maple/base2new_test.sh", "no_such_dataset", "1"], 2),
        (["scripts/ivlp/base2new_test.sh", "demo", "9"], 1),  # nothing trained there
    ):
        proc = subprocess.run(
            ["bash", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == code, (args, proc.stderr)
    proc = subprocess.run(["bash", "scripts/ivlp/base2new_train.sh", "demo", "1"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(env, CFG="no_such_config"))  # fmt: skip
    assert proc.returncode == 2 and "configs/trainers/IVLP/no_such_config.yaml" in proc.stderr


@pytest.mark.slow
def test_a_script_runs_with_the_real_interpreter(assets, tmp_path):
    out = tmp_path / "output"
    stdout, _ = script(assets, out, "scripts/maple/xd_train.sh", "1", *tiny_opts(assets, "maple"), XD_SOURCE="demo",
                       python=sys.executable)  # fmt: skip
    assert "* accuracy:" in stdout
    run_dir = out / "demo/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets_16shots/seed1"
    assert (run_dir / "MultiModalPromptLearner" / "model.pth.tar-1").is_file()
