"""``prepare_data --make-split``: the seeded random split the original code draws when a split json is missing,
as an explicit, reproducible command (and the missing-split error names it)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

import datasets  # noqa: F401  (registers the datasets)
from dassl.config import get_cfg_default
from dassl.evaluation.protocol import dataset_view as build_dataset
from tools import prepare_data
from trainers.config import extend_cfg


def class_folders(image_dir, classes, n=10):
    for c, name in enumerate(classes):
        (image_dir / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (20 * c, 10 * i, 0)).save(image_dir / name / f"{name}_{i:02d}.jpg")


def make(root, stem, seed, *extra):
    return prepare_data.main(
        ["--root", str(root), "--make-split", stem, "--seed", str(seed), "--quick", "--no-progress", *extra]
    )


def test_dtd_split_is_seeded_per_class_50_20_30_and_loads(tmp_path):
    class_folders(tmp_path / "dtd" / "images", ["striped", "banded", "dotted"])
    split_file = tmp_path / "dtd" / "split_zhou_DescribableTextures.json"
    assert make(tmp_path, "dtd", 3) in (0, 1)  # 1 only for count warnings of the tiny copy
    split = json.loads(split_file.read_text())
    assert [len(split[k]) for k in ("train", "val", "test")] == [15, 6, 9]
    assert {(label, name) for _, label, name in split["train"]} == {
        (0, "banded"),
        (1, "dotted"),
        (2, "striped"),
    }
    again = tmp_path / "again"
    class_folders(again / "dtd" / "images", ["striped", "banded", "dotted"])
    make(again, "dtd", 3)
    assert (again / "dtd" / "split_zhou_DescribableTextures.json").read_text() == split_file.read_text()
    make(again, "dtd", 4, "--overwrite-split")
    assert (again / "dtd" / "split_zhou_DescribableTextures.json").read_text() != split_file.read_text()

    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.ROOT, cfg.DATASET.NAME = str(tmp_path), "DescribableTextures"
    dataset = build_dataset(cfg)
    assert len(dataset.train_x) == 15 and dataset.classnames == ["banded", "dotted", "striped"]


def test_caltech_split_ignores_and_renames_as_upstream(tmp_path):
    class_folders(
        tmp_path / "caltech-101" / "101_ObjectCategories",
        ["BACKGROUND_Google", "Faces", "Faces_easy", "anchor"],
    )
    make(tmp_path, "caltech101", 1)
    split = json.loads((tmp_path / "caltech-101" / "split_zhou_Caltech101.json").read_text())
    assert sorted({name for _, _, name in split["test"]}) == ["anchor", "face"]


def test_an_existing_split_is_kept_and_unsupported_datasets_say_what_to_do(tmp_path, capsys):
    class_folders(tmp_path / "dtd" / "images", ["a", "b"])
    (tmp_path / "dtd" / "split_zhou_DescribableTextures.json").write_text("{}")
    assert make(tmp_path, "dtd", 1) == 1
    assert "--overwrite-split" in capsys.readouterr().out
    (tmp_path / "oxford_pets").mkdir()
    assert make(tmp_path, "oxford_pets", 1) == 1
    out = capsys.readouterr().out
    assert "--download oxford_pets" in out and "caltech101" in out and "dtd" in out


def test_the_missing_split_error_names_the_command(tmp_path):
    (tmp_path / "dtd" / "images").mkdir(parents=True)
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.ROOT, cfg.DATASET.NAME = str(tmp_path), "DescribableTextures"
    with pytest.raises(FileNotFoundError, match=r"prepare_data.py --make-split .* --seed 1"):
        build_dataset(cfg)
