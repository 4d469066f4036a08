"""The CoOp / CoCoOp / KgCoOp run scripts: upstream output directories, load epochs, and train -> test end to end.

Each script runs for real in bash. To keep the tests fast, ``PYTHON`` is a stand-in that records the
``train.py`` command line (every other python call, e.g. reading MAX_EPOCH from a yaml, runs normally); the test
then runs exactly that command line in this process (``train.run``), so the ~6 s interpreter start-up is paid
once. One test runs a script with the real interpreter.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT, USE_CUDA_OPT, make_tiny_demo
from tests.trainers.script_runner import make_recorder, option, replay, script

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("coop_family_scripts")
    data, ckpt = make_tiny_demo(root, layers=2, seed=5)
    return {"data": data, "ckpt": ckpt, "recorder": make_recorder(root)}


def tiny_opts(assets, prec_node: str) -> list[str]:
    return [
        "MODEL.BACKBONE.PATH", str(assets["ckpt"]), "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "1",
        "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "2", f"TRAINER.{prec_node}.PREC", "fp32",
        "USE_CUDA", USE_CUDA_OPT,
    ]  # fmt: skip








# (prec node, train script + args, test script + args, train dir, test dir) relative to OUTPUT; XD_SOURCE=demo
PIPELINES = {
    "coop-b2n": (
        "COOP",
        ["scripts/coop/base2new_train.sh", "demo", "1"],
        ["scripts/coop/base2new_test.sh", "demo", "1"],
        "base2new/train_base/demo/shots_16/CoOp/vit_b16_ctxv1/seed1",
        "base2new/test_new/demo/shots_16/CoOp/vit_b16_ctxv1/seed1",
    ),
    "cocoop-b2n": (
        "COCOOP",
        ["scripts/cocoop/base2new_train.sh", "demo", "2"],
        ["scripts/cocoop/base2new_test.sh", "demo", "2"],
        "base2new/train_base/demo/shots_16/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1/seed2",
        "base2new/test_new/demo/shots_16/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1/seed2",
    ),
    "kgcoop-b2n": (
        "COOP",
        ["scripts/kgcoop/base2new_train_seed.sh", "demo", "3"],
        ["scripts/kgcoop/base2new_test_seed.sh", "demo", "3"],
        "base2new/train_base/demo/shots_16_8.0/KgCoOp/vit_b16_ep100_ctxv1/seed3",
        "base2new/test_new/demo/shots_16_8.0/KgCoOp/vit_b16_ep100_ctxv1/seed3",
    ),
    "coop-xd": (
        "COOP",
        ["scripts/coop/xd_train.sh", "1"],
        ["scripts/coop/xd_test.sh", "demo", "1"],
        "demo/CoOp/vit_b16_ep50_ctxv1_16shots/seed1",
        "evaluation/CoOp/vit_b16_ep50_ctxv1_16shots/demo/seed1",
    ),
    "cocoop-xd": (
        "COCOOP",
        ["scripts/cocoop/xd_train.sh", "1"],
        ["scripts/cocoop/xd_test.sh", "demo", "1"],
        "demo/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1_16shots/seed1",
        "evaluation/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1_16shots/demo/seed1",
    ),
    "kgcoop-xd": (
        "COOP",
        ["scripts/kgcoop/xd_train_imagenet.sh", "1"],
        ["scripts/kgcoop/xd_test.sh", "demo", "1"],
        "demo/KgCoOp/vit_b16_ep100_ctxv1_16shots/seed1",
        "evaluation/KgCoOp/vit_b16_ep100_ctxv1_16shots/demo/seed1",
    ),
}


@pytest.mark.parametrize("name", list(PIPELINES))
def test_train_then_test_script_on_the_demo_data(assets, tmp_path, monkeypatch, name):
    prec_node, train_args, test_args, train_dir, test_dir = PIPELINES[name]
    out = tmp_path / "output"
    env = {"XD_SOURCE": "demo"} if name.endswith("-xd") else {}
    opts = tiny_opts(assets, prec_node)

    _, argv = script(assets, out, *train_args, *opts, **env)
    assert option(argv, "--output-dir") == str(out / train_dir)
    trained = replay(argv, monkeypatch)
    assert (out / train_dir / "prompt_learner" / "model.pth.tar-1").is_file()

    _, argv = script(assets, out, *test_args, *opts, **env)
    assert option(argv, "--output-dir") == str(out / test_dir)
    assert option(argv, "--model-dir") == str(out / train_dir)
    assert option(argv, "--load-epoch") == "1" and "--eval-only" in argv  # the epoch the run trained for
    evaluated = replay(argv, monkeypatch)
    assert (out / test_dir / "results.json").is_file()

    # the test evaluated the train script's checkpoint, rebuilt for its own class names
    for key, value in trained.model_state_dict("prompt_learner").items():
        torch.testing.assert_close(evaluated.model_state_dict("prompt_learner")[key], value, rtol=0, atol=0)
    trained_names, names = trained.dm.dataset.classnames, evaluated.dm.dataset.classnames
    if name.endswith("-b2n"):  # base classes -> novel classes
        assert len(trained_names) == len(names) == 6 and set(names).isdisjoint(trained_names)
    else:  # all classes of the source -> all classes of the target
        assert len(trained_names) == len(names) == 12


def test_coop_fewshot_script_with_every_positional_argument(assets, tmp_path, monkeypatch):
    out = tmp_path / "output"
    _, argv = script(assets, out, "scripts/coop/fewshot.sh", "demo", "1", "2", "vit_b16_ep50", "4", "True", "middle",
                     *tiny_opts(assets, "COOP"))  # fmt: skip
    tail = "demo/CoOp/vit_b16_ep50_2shots/nctx4_cscTrue_ctpmiddle/seed1"
    assert option(argv, "--output-dir") == str(out / tail)
    trainer = replay(argv, monkeypatch)
    assert trainer.model.prompt_learner.ctx.shape == (12, 4, 64)  # class-specific, all 12 classes
    assert trainer.model.prompt_learner.class_token_position == "middle"
    assert (out / tail / "prompt_learner" / "model.pth.tar-1").is_file()


@pytest.mark.parametrize(
    ("args", "config", "tail"),
    [
        (["demo", "1"], "vit_b16", "vit_b16_16shots/nctx16_cscFalse_ctpend/seed1"),
        (["demo", "1", "8"], "vit_b16", "vit_b16_8shots/nctx16_cscFalse_ctpend/seed1"),
        (["demo", "1", "4"], "vit_b16_ep100", "vit_b16_ep100_4shots/nctx16_cscFalse_ctpend/seed1"),
        (["demo", "1", "2", "vit_b16", "8"], "vit_b16", "vit_b16_2shots/nctx8_cscFalse_ctpend/seed1"),
        (["demo", "1", "1"], "vit_b16_ep50", "vit_b16_ep50_1shots/nctx16_cscFalse_ctpend/seed1"),
        (["imagenet", "2", "16"], "vit_b16_ep50", "vit_b16_ep50_16shots/nctx16_cscFalse_ctpend/seed2"),
    ],
)
def test_coop_fewshot_defaults_follow_the_paper(assets, tmp_path, args, config, tail):
    _, argv = script(assets, tmp_path, "scripts/coop/fewshot.sh", *args, "OPTIM.MAX_EPOCH", "1")
    assert option(argv, "--config-file") == f"configs/trainers/CoOp/{config}.yaml"
    assert option(argv, "--output-dir") == str(tmp_path / args[0] / "CoOp" / tail)
    assert argv[-2:] == ["OPTIM.MAX_EPOCH", "1"]  # the optional arguments end at the first KEY


def _pretend_trained(out, trainer: str, cfg: str, dataset: str, seed: str = "1") -> None:
    """The train scripts' output folders (the shared test protocol refuses to run without them)."""
    shots = "shots_16_8.0" if trainer == "KgCoOp" else "shots_16"  # KgCoOp's folder carries its weight W
    (out / "base2new" / "train_base" / dataset / shots / trainer / cfg / f"seed{seed}").mkdir(parents=True, exist_ok=True)
    (out / "imagenet" / trainer / f"{cfg}_16shots" / f"seed{seed}").mkdir(parents=True, exist_ok=True)


@pytest.mark.parametrize(
    ("args", "config", "epoch"),
    [
        (["scripts/coop/base2new_test.sh", "caltech101", "1"], "CoOp/vit_b16_ctxv1", "200"),
        (["scripts/coop/base2new_test.sh", "imagenet", "1"], "CoOp/vit_b16_ep50_ctxv1", "50"),
        (["scripts/coop/xd_test.sh", "caltech101", "1"], "CoOp/vit_b16_ep50_ctxv1", "50"),
        (["scripts/cocoop/base2new_test.sh", "caltech101", "1"], "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1", "10"),
        (["scripts/cocoop/xd_test.sh", "caltech101", "1"], "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1", "10"),
        (["scripts/kgcoop/base2new_test_seed.sh", "caltech101", "1"], "KgCoOp/vit_b16_ep100_ctxv1", "100"),
        (["scripts/kgcoop/xd_test.sh", "caltech101", "1"], "KgCoOp/vit_b16_ep100_ctxv1", "100"),
    ],
)
def test_test_scripts_load_the_epoch_the_config_trains_for(assets, tmp_path, args, config, epoch):
    _pretend_trained(tmp_path, *config.split("/"), args[1])
    _, argv = script(assets, tmp_path, *args)
    assert option(argv, "--config-file") == f"configs/trainers/{config}.yaml"
    assert option(argv, "--load-epoch") == epoch
    _, argv = script(assets, tmp_path, *args, "OPTIM.MAX_EPOCH", "3")
    assert option(argv, "--load-epoch") == "3"
    _, argv = script(assets, tmp_path, *args, LOADEP="7")
    assert option(argv, "--load-epoch") == "7"


def test_upstream_defaults_of_the_train_scripts(assets, tmp_path):
    _, argv = script(assets, tmp_path, "scripts/coop/base2new_train.sh", "imagenet", "1")
    assert option(argv, "--config-file") == "configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml"
    assert argv[-4:] == ["DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base"]
    _, argv = script(assets, tmp_path, "scripts/cocoop/xd_train.sh", "2")
    assert option(argv, "--dataset-config-file") == "configs/datasets/imagenet.yaml"
    assert option(argv, "--output-dir") == f"{tmp_path}/imagenet/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1_16shots/seed2"
    assert argv[-2:] == ["DATASET.NUM_SHOTS", "16"]
    _, argv = script(assets, tmp_path, "scripts/kgcoop/base2new_train_seed.sh", "dtd", "1", W="2.0")
    tail = "base2new/train_base/dtd/shots_16_2.0/KgCoOp/vit_b16_ep100_ctxv1/seed1"
    assert option(argv, "--output-dir") == f"{tmp_path}/{tail}"
    assert option(argv, "TRAINER.COOP.W") == "2.0" and option(argv, "TRAINER.COOP.N_CTX") == "4"
    _pretend_trained(tmp_path, "CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1", "dtd")
    _, argv = script(assets, tmp_path, "scripts/cocoop/base2new_test.sh", "dtd", "1", SUB="base")
    assert "/base2new/test_base/dtd/" in option(argv, "--output-dir") and argv[-1] == "base"


def test_scripts_refuse_missing_arguments_and_unknown_datasets(assets):
    for args in (
        ["scripts/coop/base2new_train.sh", "demo"],
        ["scripts/kgcoop/xd_test.sh", "1"],
        ["scripts/coop/fewshot.sh"],
        ["scripts/cocoop/base2new_test.sh", "no_such_dataset", "1"],
    ):
        proc = subprocess.run(["bash", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, args


@pytest.mark.slow
def test_a_script_runs_with_the_real_interpreter(assets, tmp_path):
    out = tmp_path / "output"
    stdout, _ = script(assets, out, "scripts/kgcoop/base2new_train_seed.sh", "demo", "1", *tiny_opts(assets, "COOP"),
                       python=sys.executable)  # fmt: skip
    assert "* accuracy:" in stdout
    run_dir = out / "base2new/train_base/demo/shots_16_8.0/KgCoOp/vit_b16_ep100_ctxv1/seed1"
    assert (run_dir / "prompt_learner" / "model.pth.tar-1").is_file()
