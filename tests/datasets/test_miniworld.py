"""MiniWorld: deterministic drawing, the CoOp layout + split file, registry loading, the two domains."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dassl.utils.errors import UserError
from datasets import miniworld
from datasets.miniworld import MiniWorldConfig, make_miniworld_dataset
from tests.datasets.test_benchmarks import build

SMALL = MiniWorldConfig(num_classes=4, train_per_class=2, val_per_class=1, test_per_class=2, image_size=32)


def test_class_names_are_phrases_of_words_and_downstream_is_a_seeded_subset():
    assert len(set(miniworld.ALL_CLASSNAMES)) == len(miniworld.ALL_CLASSNAMES)
    for name in miniworld.ALL_CLASSNAMES:
        colour, pattern, shape = name.split(" ")
        assert colour in miniworld.COLOURS and pattern in miniworld.PATTERNS and shape in miniworld.SHAPES
    picked = miniworld.downstream_classnames(seed=3, num_classes=6)
    assert picked == miniworld.downstream_classnames(seed=3, num_classes=6)
    assert picked != miniworld.downstream_classnames(seed=4, num_classes=6)
    assert set(picked) <= set(miniworld.ALL_CLASSNAMES) and len(set(picked)) == 6
    with pytest.raises(UserError, match="num_classes"):
        miniworld.downstream_classnames(num_classes=1)


def test_rendering_is_deterministic_and_the_domains_differ():
    names = list(miniworld.ALL_CLASSNAMES[:3])
    a, labels = miniworld.render_images(names, 2, "pretrain", seed=0, size=48)
    b, _ = miniworld.render_images(names, 2, "pretrain", seed=0, size=48)
    c, _ = miniworld.render_images(names, 2, "downstream", seed=0, size=48)
    assert a.shape == (6, 48, 48, 3) and a.dtype == np.uint8 and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # variation within a class
    # the downstream domain has darker, textured backgrounds: its mean brightness is lower
    assert c.astype(float).mean() < a.astype(float).mean() - 10


def test_dataset_folder_is_a_coop_layout_that_loads_through_the_registry(tmp_path):
    make_miniworld_dataset(tmp_path, SMALL)
    folder = tmp_path / "miniworld"
    split = json.loads((folder / "split_miniworld.json").read_text())
    assert {k: len(v) for k, v in split.items()} == {"train": 8, "val": 4, "test": 8}
    relpath, label, classname = split["train"][0]
    assert (folder / "images" / relpath).is_file() and classname == miniworld.downstream_classnames(0, 4)[label]
    first = (folder / "images" / relpath).read_bytes()
    make_miniworld_dataset(tmp_path, SMALL)  # same config: files kept
    assert (folder / "images" / relpath).read_bytes() == first

    dataset = build(tmp_path, "miniworld", "DATASET.SUBSAMPLE_CLASSES", "base")  # configs/datasets/miniworld.yaml
    assert dataset.classnames == miniworld.downstream_classnames(0, 4)[:2]
    assert len(dataset.train_x) == 4 and len(dataset.test) == 4


def test_missing_dataset_says_how_to_write_it(tmp_path):
    (tmp_path / "miniworld").mkdir()
    with pytest.raises(UserError, match="make_miniworld_dataset"):
        build(tmp_path, "miniworld")
