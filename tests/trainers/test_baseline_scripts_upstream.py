"""The original repositories' extra scripts, run for real on the demo data: PromptSRC's few-shot protocol and the
``reproduce_*`` scripts that evaluate a folder of released weights (here: weights this test trained, laid out as
the released folders are). A stand-in interpreter records each train.py command; the test replays it in this process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT, make_tiny_demo
from tests.trainers.script_runner import option, replay
from tests.trainers.test_baseline_scripts_deep import tiny_opts

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("upstream_scripts")
    data, ckpt = make_tiny_demo(root, layers=4, text_layers=4, seed=31)
    return {"data": data, "ckpt": ckpt}


# Stands in for python: appends the argv of every `python train.py ...` (NUL-separated, one record per run)
RECORDER = """#!/bin/bash
if [ "$1" = train.py ]; then shift; { printf '%s\\0' "$@"; printf '\\036\\0'; } >> "${RECORD_ARGV}"; exit 0; fi
exec "REAL_PYTHON" "$@"
"""


def recorded_runs(assets, out, *args: str, **env: str) -> list[list[str]]:
    """The train.py argument lists of every run ``bash <args>`` starts (recorded, not run)."""
    recorder = out.parent / "python-appending-recorder"
    recorder.write_text(RECORDER.replace("REAL_PYTHON", sys.executable))
    recorder.chmod(0o755)
    record = out.parent / "runs.bin"
    record.unlink(missing_ok=True)
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CFG", "SEEDS", "LOADEP", "SUB", "XD_SOURCE", "DRY_RUN")
    }
    environment.update(DATA=str(assets["data"]), OUTPUT=str(out), PYTHON=str(recorder), RECORD_ARGV=str(record),
                       FORCE="1", **env)  # fmt: skip
    proc = subprocess.run(
        ["bash", *args], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    words = record.read_bytes().decode().split("\0")[:-1]
    runs, current = [], []
    for word in words:
        if word == "\036":
            runs.append(current)
            current = []
        else:
            current.append(word)
    return runs


def released(weights_dir, layout: str, run_dir) -> None:
    """Lay a trained run out as a released weights folder (``<weights>/<layout>`` -> the run folder)."""
    target = weights_dir / layout
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(run_dir, target_is_directory=True)


def assert_same_prompts(trained, evaluated, name: str) -> None:
    saved = trained.model_state_dict(name)
    assert saved
    for key, value in saved.items():
        torch.testing.assert_close(evaluated.model_state_dict(name)[key], value, rtol=0, atol=0)


def test_promptsrc_few_shot_then_reproduce_few_shot(assets, tmp_path, monkeypatch):
    out = tmp_path / "output"
    opts = tiny_opts(assets, "promptsrc")  # 1 epoch, GPA over it, tiny depths
    (argv,) = recorded_runs(assets, out, "scripts/promptsrc/few_shot.sh", "demo", "2", *opts, SEEDS="1")
    run_dir = out / "demo/PromptSRC/vit_b16_c2_ep50_batch4_4+4ctx_few_shot_2shots/seed1"
    assert option(argv, "--output-dir") == str(run_dir) and option(argv, "DATASET.NUM_SHOTS") == "2"
    trained = replay(argv, monkeypatch)
    assert len(trained.dm.dataset.classnames) == 12  # all classes
    assert (run_dir / "VLPromptLearner" / "model.pth.tar-1").is_file()

    weights = tmp_path / "weights"
    released(weights, "2shot/seed1", run_dir)
    (argv,) = recorded_runs(
        assets, out, "scripts/promptsrc/reproduce_few_shot.sh", "demo", "2", str(weights), *opts, SEEDS="1"
    )
    assert option(argv, "--model-dir") == str(weights / "2shot/seed1") and option(argv, "--load-epoch") == "1"
    evaluated = replay(argv, monkeypatch)
    result_dir = out / "few_shot/demo/PromptSRC/vit_b16_c2_ep50_batch4_4+4ctx_few_shot_2shots/seed1"
    assert (result_dir / "results.json").is_file()
    assert_same_prompts(trained, evaluated, "VLPromptLearner")


def test_reproduce_maple_evaluates_released_base_to_novel_weights(assets, tmp_path, monkeypatch):
    out = tmp_path / "output"
    opts = tiny_opts(assets, "maple")
    (argv,) = recorded_runs(assets, out, "scripts/maple/base2new_train_maple.sh", "demo", "1", *opts)
    trained = replay(argv, monkeypatch)
    weights = tmp_path / "released"
    released(
        weights,
        "base/seed1",
        out / "base2new/train_base/demo/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx/seed1",
    )

    runs = recorded_runs(
        assets, tmp_path / "reproduced", "scripts/maple/reproduce_maple.sh", "demo", "1", str(weights), *opts
    )
    assert [option(argv, "DATASET.SUBSAMPLE_CLASSES") for argv in runs] == ["base", "new"]
    base, new = (replay(argv, monkeypatch) for argv in runs)
    tail = "demo/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx/seed1"
    for part in ("test_base", "test_new"):
        assert (tmp_path / "reproduced/base2new" / part / tail / "results.json").is_file()
    assert base.dm.dataset.classnames == trained.dm.dataset.classnames
    assert set(new.dm.dataset.classnames).isdisjoint(trained.dm.dataset.classnames)
    assert_same_prompts(trained, new, "MultiModalPromptLearner")


def test_reproduce_refuses_a_missing_weights_folder(assets, tmp_path):
    environment = {**os.environ, "DATA": str(assets["data"]), "OUTPUT": str(tmp_path)}
    proc = subprocess.run(["bash", "scripts/promptsrc/reproduce_xd.sh", "demo", "1", str(tmp_path / "nothing")],
                          cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1 and f"No weights in {tmp_path / 'nothing'}/seed1" in proc.stderr
