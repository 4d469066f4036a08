"""Results as data: results.json (schema 2) carries what parse_results needs; folder names play no part."""

from __future__ import annotations

import json

import pytest

import train
from dassl.evaluation.protocol import harmonic_mean
from dassl.evaluation.results import SCHEMA_VERSION, read_results, results_problems
from tests.conftest import REPO_ROOT, USE_CUDA_OPT, make_tiny_demo
from tools import parse_results as pr


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("results"), layers=2, seed=5)


def coop(assets, out, seed: int, subsample: str, *flags: str) -> dict:
    data, ckpt = assets
    argv = [
        "--root", str(data), "--seed", str(seed), "--trainer", "CoOp",
        "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
        "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/vit_b16.yaml"),
        "--output-dir", str(out), *flags,
        "MODEL.BACKBONE.PATH", str(ckpt), "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "1",
        "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "2", "DATASET.SUBSAMPLE_CLASSES", subsample,
        "TRAINER.COOP.PREC", "fp32", "USE_CUDA", USE_CUDA_OPT,
    ]  # fmt: skip
    train.run(train.build_parser().parse_args(argv))
    return read_results(out / "results.json")


def test_parse_results_pairs_base_and_novel_runs_by_what_results_json_records(assets, tmp_path):
    # folder names that say nothing: no train_base/, test_new/, seed or dataset folders
    root = tmp_path / "runs"
    numbers = {}
    for seed in (1, 2):
        trained = root / f"a{seed}"
        base = coop(assets, trained, seed, "base")
        novel = coop(assets, root / f"b{seed}", seed, "new", "--eval-only", "--model-dir", str(trained), "--load-epoch", "1")
        assert results_problems(base) == [] and base["schema_version"] == SCHEMA_VERSION
        assert base["experiment"]["name"] == "CoOp/vit_b16" == novel["experiment"]["name"]
        assert base["experiment"]["config_id"] == novel["experiment"]["config_id"]  # only the class subset differs
        assert base["base"]["accuracy"] == base["final"]["accuracy"] and "novel" not in base
        assert novel["novel"]["accuracy"] == novel["final"]["accuracy"]
        numbers[seed] = (base["base"]["accuracy"], novel["novel"]["accuracy"])

    (experiment,) = pr.collect(root)
    assert experiment.name == "CoOp/vit_b16 [2-shot]" and experiment.protocol == "base2novel"
    (demo,) = experiment.datasets
    assert [(s.seed, s.base, s.novel) for s in demo.seeds] == [(seed, *numbers[seed]) for seed in (1, 2)]
    assert demo.seeds[0].hm == pytest.approx(harmonic_mean(*numbers[1]))
    assert demo.missing == []


def test_an_edited_results_json_is_refused_with_its_path(assets, tmp_path, capsys):
    out = tmp_path / "runs" / "x"
    coop(assets, out, 1, "base")
    data = json.loads((out / "results.json").read_text())
    data["base"] = "high"
    (out / "results.json").write_text(json.dumps(data))
    assert pr.main([str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert f"{out / 'results.json'}: not a valid results.json of schema 2" in err and "'base' must be" in err
