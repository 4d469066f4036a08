"""Protocols and few-shot caches on the golden dataset folder: the splits upstream PromptKD builds."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import stat
from pathlib import Path

import pytest

import datasets  # noqa: F401  (registers the datasets)
from dassl.config import get_cfg_default
from dassl.evaluation.protocol import dataset_view
from dassl.utils import set_random_seed
from datasets.demo import DEMO_CLASSES, make_demo_dataset
from trainers.config import extend_cfg


def copy_golden_data(golden_dir: Path, dest: Path) -> Path:
    shutil.copytree(golden_dir / "data", dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return dest


def cfg_for(root: Path, **overrides):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.NAME = "Caltech101"
    cfg.DATASET.ROOT = str(root)
    cfg.TEST.FINAL_MODEL = "best_val"  # a selection evaluation (its images are the view's "val")
    for key, value in overrides.items():
        node, _, leaf = key.rpartition("__")
        target = cfg
        for part in node.split("__") if node else []:
            target = target[part]
        target[leaf] = value
    return cfg


def build_dataset(cfg):
    """The dataset as the run's protocol presents it: training items, the model's classes, every evaluation."""
    view = dataset_view(cfg)
    view.test_base = view.evaluations.get("test_base", [])
    return view


def rel(data, image_dir: Path) -> list[list]:
    return [[Path(os.path.relpath(d.impath, image_dir)).as_posix(), d.label, d.classname] for d in data]


@pytest.fixture
def golden_root(golden_dir, tmp_path):
    return copy_golden_data(golden_dir, tmp_path / "data")


def test_promptkd_base2novel_splits_equal_upstream(golden_dir, golden_root):
    golden = json.loads((golden_dir / "engine" / "manifest.json").read_text())["promptkd_splits"]
    cfg = cfg_for(golden_root, TRAINER__NAME="PromptKD", TRAINER__MODAL="base2novel", DATASET__NUM_SHOTS=0)
    ds = build_dataset(cfg)
    image_dir = golden_root / "caltech-101" / "101_ObjectCategories"
    assert ds.classnames == golden["classnames"]
    assert rel(ds.train_x, image_dir) == golden["train_x"]
    assert rel(ds.val, image_dir) == golden["val"]
    assert rel(ds.test, image_dir) == golden["test"]
    assert len(ds.train_x) == 160 and {d.label for d in ds.val} == set(range(5))


def test_explicit_protocol_overrides_the_trainer_rule(golden_root):
    # any trainer can use the transductive splits, and PromptKD can be given the standard ones
    transductive = build_dataset(cfg_for(golden_root, TRAINER__NAME="CoOp", DATASET__PROTOCOL="transductive"))
    assert len(transductive.train_x) == 160 and len(transductive.test) == 5 * 8
    standard = build_dataset(
        cfg_for(golden_root, TRAINER__NAME="PromptKD", DATASET__PROTOCOL="standard", DATASET__SUBSAMPLE_CLASSES="base")
    )
    assert standard.num_classes == 5 and len(standard.train_x) == 5 * 16


def test_cross_protocol_uses_target_test_for_selection(golden_root):
    ds = build_dataset(cfg_for(golden_root, TRAINER__NAME="PromptKD", TRAINER__MODAL="cross"))
    assert ds.num_classes == 10
    assert [d.impath for d in ds.val] == [d.impath for d in ds.test]
    assert len(ds.test) == 10 * 8


def test_val_source_val_selects_on_the_json_val_split(golden_root):
    ds = build_dataset(
        cfg_for(golden_root, TRAINER__NAME="PromptKD", TRAINER__MODAL="base2novel", DATASET__VAL_SOURCE="val")
    )
    assert len(ds.val) == 5 * 4  # json val of the base classes
    assert {d.label for d in ds.val} == set(range(5))
    assert not {d.impath for d in ds.val} & {d.impath for d in ds.test}
    standard = build_dataset(cfg_for(golden_root, DATASET__VAL_SOURCE="val", DATASET__SUBSAMPLE_CLASSES="new"))
    assert len(standard.val) == 5 * 4 and standard.val[0].label == 0


def test_bad_protocol_values_are_explained(golden_root):
    with pytest.raises(ValueError, match="DATASET.PROTOCOL"):
        build_dataset(cfg_for(golden_root, DATASET__PROTOCOL="semi"))
    with pytest.raises(ValueError, match="TRAINER.MODAL"):
        build_dataset(cfg_for(golden_root, TRAINER__NAME="PromptKD", TRAINER__MODAL="xd"))
    with pytest.raises(ValueError, match="DATASET.VAL_SOURCE"):
        build_dataset(cfg_for(golden_root, DATASET__VAL_SOURCE="train"))


def test_64_shot_unlabeled_ablation_samples_all_classes(golden_root):
    set_random_seed(1)
    ds = build_dataset(cfg_for(golden_root, TRAINER__NAME="PromptKD", DATASET__NUM_SHOTS=4, SEED=1))
    assert len(ds.train_x) == 10 * 4  # K images of every class, base and novel
    assert len(ds.test) == 5 * 8  # evaluation splits are unchanged


def _write_upstream_pkl(golden_root: Path, picks: dict[str, list]) -> Path:
    """An upstream-style cache: pickled Datum objects with absolute paths from another machine."""
    from dassl.data.datasets import Datum

    image_dir = golden_root / "caltech-101" / "101_ObjectCategories"
    data = {}
    for split, items in picks.items():
        out = []
        for relpath, label, classname in items:
            item = Datum(impath=str(image_dir / relpath), label=label, classname=classname)
            item.__dict__["_impath"] = f"/home/someone/DATA/caltech-101/101_ObjectCategories/{relpath}"
            out.append(item)
        data[split] = out
    path = golden_root / "caltech-101" / "split_fewshot" / "shot_2-seed_7.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data))
    return path


def test_upstream_pkl_is_ignored_unless_opted_in(golden_root, capsys):
    picks = {"train": [["Faces/image_0001.jpg", 0, "face"]] * 2, "val": [["Faces/image_0017.jpg", 0, "face"]]}
    _write_upstream_pkl(golden_root, picks)
    set_random_seed(7)
    ds = build_dataset(cfg_for(golden_root, DATASET__NUM_SHOTS=2, SEED=7))
    assert "DATASET.READ_UPSTREAM_PKL" in capsys.readouterr().out
    assert len(ds.train_x) == 2 * 10  # sampled anew, not the pickle's two items


def test_upstream_pkl_opt_in_imports_and_reroots_paths(golden_root):
    picks = {
        "train": [["Faces/image_0001.jpg", 0, "face"], ["Leopards/image_0002.jpg", 1, "leopard"]],
        "val": [["Faces/image_0017.jpg", 0, "face"]],
    }
    _write_upstream_pkl(golden_root, picks)
    ds = build_dataset(cfg_for(golden_root, DATASET__NUM_SHOTS=2, SEED=7, DATASET__READ_UPSTREAM_PKL=True))
    image_dir = golden_root / "caltech-101" / "101_ObjectCategories"
    assert rel(ds.train_x, image_dir) == picks["train"]
    cache = json.loads((golden_root / "caltech-101" / "split_fewshot" / "shot_2-seed_7.json").read_text())
    assert cache["train"] == picks["train"]  # converted to our JSON cache once


def test_upstream_pkl_with_foreign_classes_is_refused(golden_root):
    path = golden_root / "caltech-101" / "split_fewshot" / "shot_2-seed_9.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"train": [os.getcwd], "val": []}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        build_dataset(cfg_for(golden_root, DATASET__NUM_SHOTS=2, SEED=9, DATASET__READ_UPSTREAM_PKL=True))


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_demo_dataset_is_byte_identical_and_split_in_halves(tmp_path):
    make_demo_dataset(tmp_path / "a")
    make_demo_dataset(tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    cfg = cfg_for(tmp_path / "a", DATASET__NAME="Demo", DATASET__SUBSAMPLE_CLASSES="base")
    base = build_dataset(cfg)
    assert base.classnames == [f"{c} {s}" for c, s in DEMO_CLASSES[:6]]
    assert len(base.train_x) == 6 * 16 and len(base.test) == 6 * 8
    novel = build_dataset(cfg_for(tmp_path / "a", DATASET__NAME="Demo", DATASET__SUBSAMPLE_CLASSES="new"))
    assert novel.classnames == [f"{c} {s}" for c, s in DEMO_CLASSES[6:]]



def test_honest_selection_needs_a_val_split(tmp_path):
    from tests.datasets.layouts import write_layout

    write_layout("imagenet", tmp_path)
    cfg = cfg_for(tmp_path, DATASET__NAME="ImageNet", DATASET__VAL_SOURCE="val", TEST__FINAL_MODEL="best_val")
    with pytest.raises(ValueError, match="ImageNet has no val split"):
        build_dataset(cfg)
