"""train.py: a readable --help, a console that shows progress (the log keeps everything), and a log that keeps
a failed or killed run's story."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import train
from dassl.engine import TRAINER_REGISTRY
from tests.conftest import REPO_ROOT, USE_CUDA_OPT, make_tiny_demo, run_tiny


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("train_cli"), layers=2, seed=3)


def test_help_lists_trainers_and_configs_and_hides_the_unused_engine_flags(capsys):
    with pytest.raises(SystemExit):
        train.build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for name in TRAINER_REGISTRY.registered_names():
        assert re.search(rf"\b{name}\b", text), name
    for config in (REPO_ROOT / "configs").glob("*/*.yaml"):
        assert config.stem in text, config
    for config in (REPO_ROOT / "configs" / "trainers").glob("*/*.yaml"):
        assert config.name in text, config
    for flag in ("--backbone", "--head", "--source-domains", "--target-domains"):
        assert flag not in text
    # still accepted, so upstream command lines keep working
    args = train.build_parser().parse_args(["--backbone", "ViT-B/16", "--head", "", "--source-domains", "a"])
    assert args.backbone == "ViT-B/16" and args.source_domains == ["a"]


def test_console_shows_epochs_and_results_and_the_log_keeps_everything(assets, tmp_path, capsys):
    out = tmp_path / "coop"
    run_tiny(assets, "CoOp", "CoOp/vit_b16", out, "TRAIN.PRINT_FREQ", "1000", "OPTIM.MAX_EPOCH", "2")
    console = capsys.readouterr().out
    log = (out / "log.txt").read_text(encoding="utf-8")
    assert "** Config **" in log and "** Config **" not in console  # the config is in config.yaml and the log
    assert (out / "config.yaml").is_file()
    # an epoch has fewer batches than PRINT_FREQ: upstream prints every batch; those lines are in the log only
    assert re.search(r"^epoch \[1/2\] batch \[1/\d+\]", log, flags=re.M)
    assert not re.search(r"^epoch \[", console, flags=re.M)
    assert re.findall(r"^epoch (\d)/2: loss", console, flags=re.M) == ["1", "2"]
    assert re.search(r"^base-class test images, deployed model of epoch 2: accuracy [\d.]+%$", console, flags=re.M)
    assert "* accuracy:" in log and "Evaluate on the *test* set" in log  # what upstream parsers grep
    assert not (out / "tensorboard").exists() or any((out / "tensorboard").iterdir())


def test_verbose_prints_everything_and_quiet_only_epochs_and_results(assets, tmp_path, capsys):
    run_tiny(assets, "CoOp", "CoOp/vit_b16", tmp_path / "v", "TRAIN.PRINT_FREQ", "1000", flags=("--verbose",))
    verbose = capsys.readouterr().out
    assert "** Config **" in verbose and re.search(r"^epoch \[1/1\] batch \[1/", verbose, flags=re.M)
    run_tiny(assets, "CoOp", "CoOp/vit_b16", tmp_path / "q", flags=("--quiet",))
    quiet = capsys.readouterr().out.splitlines()
    assert quiet[0].startswith("epoch 1/1: loss") and quiet[-1].startswith("base-class test images, deployed")
    assert len(quiet) == 2


def test_zero_shot_says_nothing_about_skipping_load_model(assets, tmp_path, capsys):
    data, ckpt = assets
    argv = ["--root", str(data), "--trainer", "ZeroshotCLIP", "--output-dir", str(tmp_path / "zs"), "--eval-only",
            "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
            "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/vit_b16.yaml"), "MODEL.BACKBONE.PATH", str(ckpt),
            "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "TRAINER.COOP.PREC", "fp32",
            "USE_CUDA", USE_CUDA_OPT]  # fmt: skip
    train.run(train.build_parser().parse_args(argv))
    console = capsys.readouterr().out
    assert "load_model() is skipped" not in console
    assert re.search(r"^test images, deployed model: accuracy [\d.]+%$", console, flags=re.M), console


def test_a_failed_run_leaves_the_error_and_its_traceback_in_log_txt(tmp_path):
    before = (sys.stdout, sys.stderr)
    out = tmp_path / "failed"
    argv = ["--root", str(tmp_path / "no_data"), "--trainer", "CoOp", "--output-dir", str(out),
            "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
            "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/vit_b16.yaml"), "USE_CUDA", USE_CUDA_OPT]  # fmt: skip
    with pytest.raises(Exception) as failure:
        train.run(train.build_parser().parse_args(argv))
    assert (sys.stdout, sys.stderr) == before
    log = (out / "log.txt").read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log
    assert str(failure.value).splitlines()[0] in log


@pytest.mark.slow
def test_a_killed_training_run_keeps_its_log(assets, tmp_path):
    """SIGKILL in the middle of training: log.txt holds every line printed before (it is line-buffered)."""
    data, ckpt = assets
    out = tmp_path / "killed"
    command = [
        sys.executable, str(REPO_ROOT / "train.py"), "--root", str(data), "--seed", "1", "--trainer", "CoOp",
        "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
        "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/vit_b16.yaml"), "--output-dir", str(out),
        "MODEL.BACKBONE.PATH", str(ckpt), "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "200",
        "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "2", "TRAINER.COOP.PREC", "fp32", "USE_CUDA", USE_CUDA_OPT,
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path)
    try:
        for line in proc.stdout:  # the console's epoch lines tell when training is under way
            if line.startswith("epoch 2/200"):
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.1)
    log = (out / "log.txt").read_text(encoding="utf-8")
    assert "** Config **" in log
    assert re.search(r"^epoch 1/200: loss", log, flags=re.M) and re.search(r"^epoch 2/200: loss", log, flags=re.M)
    assert Path(out / "config.yaml").is_file()
