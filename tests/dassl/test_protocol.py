"""The evaluation protocol object and the results.json schema (dassl/evaluation/protocol.py, results.py)."""

from __future__ import annotations

import json

import pytest

import trainers  # noqa: F401  (registers the trainers: the protocol kind is the trainer class's)
from dassl.config import ConfigError, get_cfg_default
from dassl.data.datasets import Datum
from dassl.evaluation.protocol import (
    ClassPartition,
    base_class_count,
    build_protocol,
    harmonic_mean,
    resolve_val_source,
)
from dassl.evaluation.results import (
    SCHEMA_VERSION,
    ResultsError,
    read_results,
    results_problems,
    summarize,
    upgrade_v1,
)
from trainers.config import extend_cfg


def cfg_of(trainer: str, **opts):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.TRAINER.NAME = trainer
    for key, value in opts.items():
        node, leaf = key.split("__")
        cfg[node][leaf] = value
    return cfg


def shape(protocol) -> list[tuple]:
    return [(e.name, e.split, e.images, e.classes, e.role, e.when, e.same_as) for e in protocol.evaluations]


def test_base_is_the_first_half_rounded_up_and_hm_is_the_harmonic_mean():
    assert [base_class_count(n) for n in (1, 2, 5, 10, 37, 101)] == [1, 1, 3, 5, 19, 51]
    assert harmonic_mean(80.0, 60.0) == pytest.approx(2 * 80 * 60 / 140)
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_partition_relabels_and_slices_columns(tmp_path):
    for y in range(5):
        (tmp_path / f"{y}.png").write_bytes(b"")
    data = [Datum(impath=str(tmp_path / f"{y}.png"), label=y, classname=f"c{y}") for y in (4, 0, 2, 1, 3)]
    partition = ClassPartition.of(data)
    assert partition.select("base") == (0, 1, 2) and partition.select("new") == (3, 4)
    novel = partition.subsample(data, "new")
    assert sorted((d.label, d.classname) for d in novel) == [(0, "c3"), (1, "c4")]
    assert partition.columns("all", "base") == slice(0, 3) and partition.columns("all", "new") == slice(3, 5)
    assert partition.columns("base", "base") is None
    with pytest.raises(ConfigError, match="cannot be evaluated"):
        partition.columns("base", "new")


def test_standard_protocol_selects_on_val_and_counts_the_test_by_its_class_subset():
    protocol = build_protocol(cfg_of("CoOp", TEST__FINAL_MODEL="best_val", DATASET__SUBSAMPLE_CLASSES="base",
                                     DATASET__VAL_SOURCE="auto"))  # fmt: skip
    assert protocol.kind == "standard" and protocol.model_classes == "base"
    assert shape(protocol) == [
        ("val", "val", "val", "base", "selection", "epoch", None),
        ("test", "test", "test", "base", "base", "final", None),
    ]
    novel = build_protocol(cfg_of("CoOp", DATASET__SUBSAMPLE_CLASSES="new"))  # last_step: no selection
    assert shape(novel) == [("test", "test", "test", "new", "novel", "final", None)]


def test_student_protocol_parity_and_honest_modes():
    parity = build_protocol(cfg_of("PromptKD", TEST__FINAL_MODEL="best_val"))
    assert parity.kind == "transductive" and parity.model_classes == "all" and parity.val_source == "test"
    assert shape(parity) == [
        ("val", "val", "test", "base", "selection", "epoch", None),
        ("test_base", "test_base", "test", "base", "base", "final", "val"),  # = the selection at the deployed epoch
        ("test", "test", "test", "new", "novel", "final", None),
        ("test_last", "test", "test", "new", "novel", "last", None),
    ]
    assert [e.name for e in parity.finals] == ["test_base", "test"]  # the main test last
    honest = build_protocol(cfg_of("PromptKD", TEST__FINAL_MODEL="best_val", DATASET__VAL_SOURCE="val"))
    assert honest.selection.images == "val" and honest.get("test_base").same_as is None
    last = build_protocol(cfg_of("PromptKD", TEST__FINAL_MODEL="last_step"))
    assert [e.name for e in last.evaluations] == ["test_base", "test"]
    cross = build_protocol(cfg_of("PromptKD", TEST__FINAL_MODEL="best_val", TRAINER__MODAL="cross"))
    assert [(e.name, e.classes, e.role) for e in cross.evaluations] == [
        ("val", "all", "selection"), ("test", "all", "accuracy"), ("test_last", "all", "accuracy")]  # fmt: skip


def test_the_trainer_class_chooses_the_kind_and_an_explicit_protocol_overrides_it():
    assert resolve_val_source(cfg_of("PromptKD"), "transductive") == "test"
    assert resolve_val_source(cfg_of("CoOp"), "standard") == "val"
    assert build_protocol(cfg_of("CoOp", DATASET__PROTOCOL="transductive")).kind == "transductive"
    assert build_protocol(cfg_of("PromptKD", DATASET__PROTOCOL="standard")).kind == "standard"
    with pytest.raises(ConfigError, match="TEST.FINAL_MODEL"):
        build_protocol(cfg_of("CoOp", TEST__FINAL_MODEL="best"))


def entry(split: str, epoch: int | None, accuracy: float, stage: str = "epoch", final: bool = False) -> dict:
    return {"split": split, "epoch": epoch, "stage": stage, "final": final, "accuracy": accuracy}


def test_parity_summary_takes_base_from_the_selection_at_the_deployed_epoch():
    protocol = build_protocol(cfg_of("PromptKD", TEST__FINAL_MODEL="best_val"))
    record = [entry("val", 1, 70.0), entry("val", 2, 80.0), entry("val", 3, 75.0),
              entry("test", 3, 50.0, "after_train"), entry("test", 2, 60.0, "after_train", final=True)]  # fmt: skip
    summary = summarize(protocol, record)
    assert summary["base"] == {"accuracy": 80.0, "epoch": 2, "evaluation": "val"}
    assert summary["novel"] == {"accuracy": 60.0, "epoch": 2, "evaluation": "test"}
    assert summary["hm"] == pytest.approx(harmonic_mean(80.0, 60.0))
    assert summary["base_last"]["accuracy"] == 75.0 and summary["novel_last"]["accuracy"] == 50.0
    assert summary["selection"]["accuracy"] == 80.0 and summary["selection"]["epoch"] == 2


def test_honest_summary_takes_base_from_the_deployed_models_base_test():
    protocol = build_protocol(cfg_of("PromptKD", TEST__FINAL_MODEL="best_val", DATASET__VAL_SOURCE="val"))
    record = [entry("val", 1, 90.0), entry("test_base", 1, 71.0, "after_train", True),
              entry("test", 1, 55.0, "after_train", True)]  # fmt: skip
    summary = summarize(protocol, record)
    assert summary["base"]["accuracy"] == 71.0 and summary["novel"]["accuracy"] == 55.0
    assert summary["selection"]["split"] == "json val split" and "base_last" not in summary


def valid_results(**changes) -> dict:
    data = {"schema_version": SCHEMA_VERSION, "trainer": "CoOp", "dataset": "Demo", "seed": 1, "num_shots": 16,
            "subsample_classes": "base", "final_model": "last_step", "experiment": {"name": "CoOp/x"},
            "protocol": {"kind": "standard"}, "evaluations": [entry("test", 2, 50.0, "after_train", True)],
            "finished": True, "final": entry("test", 2, 50.0, "after_train", True),
            "base": {"accuracy": 50.0, "epoch": 2, "evaluation": "test"}}  # fmt: skip
    data.update(changes)
    return data


def test_results_are_validated_and_problems_named(tmp_path):
    assert results_problems(valid_results()) == []
    assert results_problems(valid_results(seed="1")) == ["'seed' is a str, expected int"]
    assert results_problems(valid_results(schema_version=9)) == ["schema_version 9 (this version reads 2)"]
    assert "'base' must be" in results_problems(valid_results(base=50.0))[0]
    bad = valid_results()
    del bad["protocol"]
    assert results_problems(bad) == ["lacks 'protocol'"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(valid_results(finished=True, final=None)))
    with pytest.raises(ResultsError, match=r"results.json: not a valid results.json of schema 2 .*'final'"):
        read_results(path)
    path.write_text('{"trainer": "Co')
    with pytest.raises(ResultsError, match="truncated by a crash"):
        read_results(path)


def test_version_1_files_are_upgraded_with_their_numbers():
    v1 = {"trainer": "CoOp", "dataset": "Demo", "seed": 2, "subsample_classes": "new", "final_model": "last_step",
          "evaluations": [{"split": "test", "epoch": None, "accuracy": 42.0}],
          "final": {"split": "test", "epoch": None, "accuracy": 42.0}}  # fmt: skip
    upgraded = upgrade_v1(v1)
    assert results_problems(upgraded) == []
    assert upgraded["novel"]["accuracy"] == 42.0 and upgraded["protocol"]["upgraded_from"] == 1
