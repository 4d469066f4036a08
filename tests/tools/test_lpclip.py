"""The linear-probe baseline on the demo data: features of the few-shot sample, C chosen on val, test accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, USE_CUDA_OPT, make_tiny_demo
from tools import lpclip

pytestmark = pytest.mark.usefixtures("one_thread")


def test_linear_probe_trains_on_the_demo_data(tmp_path, capsys):
    data, ckpt = make_tiny_demo(tmp_path, layers=2, seed=19)
    argv = ["--root", str(data), "--seed", "1", "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
            "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/rn50_val.yaml"), "--output-dir", str(tmp_path / "out"),
            "MODEL.BACKBONE.NAME", "ViT-B/16", "MODEL.BACKBONE.PATH", str(ckpt), "INPUT.SIZE", "(32, 32)",
            "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "4", "USE_CUDA", USE_CUDA_OPT]  # fmt: skip
    assert lpclip.main(argv) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["num_shots"] == 4 and results["C"] > 0
    assert f"* accuracy: {results['test_accuracy']:.1f}%" in capsys.readouterr().out
    assert results["test_accuracy"] > 100 / 12  # the coloured shapes are separable even for a random CLIP


def test_c_search_picks_the_regularisation_that_fits_val():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 3

    def sample(n):
        labels = np.repeat(np.arange(3), n)
        return centres[labels] + rng.normal(size=(3 * n, 5)), labels

    best_c, val_accuracy = lpclip.search_c(sample(4), sample(10))
    assert val_accuracy > 0.8 and best_c >= 1e-2  # heavy regularisation (1e-4, 1e-6) cannot separate them
