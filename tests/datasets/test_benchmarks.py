"""The 11 benchmarks and 4 ImageNet variants, each built from a miniature of its real layout (layouts.py):
class names and labels, split sizes, base/new, the transductive protocol, few-shot caches, ImageNet's
``preprocessed.json`` and the errors a missing piece gives (reference-promptkd.md §4, §5)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest

import datasets  # noqa: F401  (registers the datasets)
from dassl.config import get_cfg_default, merge_cfg_from_file, merge_cfg_from_list
from dassl.data.datasets import DATASET_REGISTRY
from dassl.evaluation.protocol import dataset_view as build_dataset
from dassl.utils import set_random_seed
from datasets import imagenet as imagenet_module
from tests.conftest import REPO_ROOT
from trainers.config import extend_cfg

from .layouts import (
    ALL,
    BENCHMARKS,
    CLASSNAMES_TXT,
    IMAGENET_WNIDS,
    JSON_SPECS,
    VARIANTS,
    Layout,
    write_image,
    write_layout,
)


def make_cfg(root: Path, stem: str, *opts: str):
    """The config train.py builds for ``--dataset-config-file configs/datasets/<stem>.yaml ... KEY VALUE``."""
    cfg = get_cfg_default()
    extend_cfg(cfg)
    merge_cfg_from_file(cfg, str(REPO_ROOT / "configs" / "datasets" / f"{stem}.yaml"))
    merge_cfg_from_list(cfg, ["DATASET.ROOT", str(root), "VERBOSE", "False", *opts])
    return cfg


def build(root: Path, stem: str, *opts: str):
    return build_dataset(make_cfg(root, stem, *opts))


def paths(data) -> list[str]:
    return [d.impath for d in data]


def check_split(data, classnames: list[str], per_class: int) -> None:
    """``per_class`` images of each class, labels 0..n-1 with the right class names, every file on disk."""
    assert len(data) == per_class * len(classnames)
    if per_class:
        assert sorted({d.label for d in data}) == list(range(len(classnames)))
    for d in data:
        assert d.classname == classnames[d.label]
        assert os.path.isfile(d.impath)


@pytest.fixture(params=ALL)
def any_dataset(request, tmp_path) -> tuple[str, Path, Layout]:
    root = tmp_path / "data"
    return request.param, root, write_layout(request.param, root)


@pytest.fixture(params=BENCHMARKS)
def one_benchmark(request, tmp_path) -> tuple[str, Path, Layout]:
    root = tmp_path / "data"
    return request.param, root, write_layout(request.param, root)


# --------------------------------------------------------------------------------------------------
# registry and configs
# --------------------------------------------------------------------------------------------------


def test_every_registered_dataset_has_a_config_and_a_miniature():
    names = {}
    for yaml_file in (REPO_ROOT / "configs" / "datasets").glob("*.yaml"):
        cfg = get_cfg_default()
        extend_cfg(cfg)
        names[merge_cfg_from_file(cfg, str(yaml_file)).DATASET.NAME] = yaml_file.stem
    ours = {
        n
        for n in DATASET_REGISTRY.registered_names()
        if DATASET_REGISTRY.get(n).__module__.startswith("datasets.")
    }
    assert ours == set(names)
    generated = {"Demo", "MiniWorld"}  # written by code, tested in their own modules (test_miniworld.py)
    assert {names[name] for name in names if name not in generated} == set(ALL)


# --------------------------------------------------------------------------------------------------
# all classes, as read from disk
# --------------------------------------------------------------------------------------------------


def test_builds_with_class_names_labels_and_split_sizes(any_dataset):
    stem, root, layout = any_dataset
    ds = build(root, stem, "DATASET.VAL_SOURCE", "val")  # the json val split, not the test split
    assert type(ds.source).__name__ == layout.name
    assert ds.classnames == layout.classnames
    assert ds.num_classes == layout.num_classes
    assert ds.lab2cname == dict(enumerate(layout.classnames))
    assert ds.train_x[0].impath == str(root / layout.first_train)
    if layout.protocol:
        check_split(ds.train_x, layout.classnames, layout.sizes["train"])
        check_split(ds.val, layout.classnames, layout.sizes["val"])
        check_split(ds.test, layout.classnames, layout.sizes["test"])
        assert not set(paths(ds.train_x)) & set(paths(ds.test))
    else:
        check_split(ds.test, layout.classnames, layout.sizes["test"])
        assert paths(ds.train_x) == paths(ds.test)
        assert not ds.val  # test-only sets have no val split
    assert all(Path(p).is_relative_to(root / layout.dataset_dir) for p in paths(ds.train_x) + paths(ds.test))


def test_default_selection_split_is_the_json_val_split_for_the_baselines(one_benchmark):
    stem, root, _ = one_benchmark
    ds = build(root, stem)  # no trainer named: the baselines' standard protocol
    assert paths(ds.val) == paths(build(root, stem, "DATASET.VAL_SOURCE", "val").val)
    if stem == "imagenet":  # no val split: nothing to select on (the engine's val evaluation falls back to test)
        assert paths(ds.val) == []
    else:
        assert paths(ds.val) != paths(ds.test)
    assert paths(build(root, stem, "DATASET.VAL_SOURCE", "test").val) == paths(ds.test)


@pytest.mark.parametrize("stem", sorted(JSON_SPECS))
def test_class_names_follow_the_dataset_rule(tmp_path, stem):
    """Spot checks of §5.3 on the miniature split files (the readers take the names from the json)."""
    write_layout(stem, tmp_path)
    ds = build(tmp_path, stem)
    expected = {
        "oxford_pets": "abyssinian",
        "stanford_cars": "2000 AM General Hummer SUV",
        "oxford_flowers": "pink primrose",
        "food101": "apple_pie",
        "sun397": "abbey",
        "dtd": "banded",
        "eurosat": "Annual Crop Land",
        "ucf101": "Apply_Eye_Makeup",
    }
    assert ds.classnames[0] == expected[stem]
    if stem == "sun397":
        assert ds.classnames[4] == "outdoor apartment_building"
        assert (
            Path(ds.train_x[-1].impath).parent
            == tmp_path / "sun397" / "SUN397" / "a" / "apartment_building" / "outdoor"
        )
    if stem == "stanford_cars":
        assert [Path(p).parent.name for p in paths(ds.train_x)] == ["cars_train"] * len(ds.train_x)
        assert {Path(p).parent.name for p in paths(ds.test)} == {"cars_test"}


def test_fgvc_aircraft_labels_are_the_line_index_in_variants_txt(tmp_path):
    layout = write_layout("fgvc_aircraft", tmp_path)
    variants = (tmp_path / "fgvc_aircraft" / "variants.txt").read_text().splitlines()
    ds = build(tmp_path, "fgvc_aircraft", "DATASET.VAL_SOURCE", "val")
    for split in ("train", "val", "test"):
        lines = (tmp_path / "fgvc_aircraft" / f"images_variant_{split}.txt").read_text().splitlines()
        data = {"train": ds.train_x, "val": ds.val, "test": ds.test}[split]
        assert [Path(d.impath).name for d in data] == [
            f"{line.split(' ')[0]}.jpg" for line in lines
        ]  # file order
        assert [variants[d.label] for d in data] == [line.split(" ", 1)[1] for line in lines]
    assert ds.lab2cname[3] == "Cessna 172" and ds.lab2cname[4] == "F/A-18"
    assert [d.label for d in ds.train_x[:5]] == [4, 3, 2, 1, 0]  # not the order the classes appear in
    assert layout.classnames == variants


def test_imagenet_labels_follow_the_sorted_wnid_folders_and_images_are_sorted(tmp_path):
    layout = write_layout("imagenet", tmp_path)
    ds = build(tmp_path, "imagenet")
    assert ds.classnames == layout.classnames == [CLASSNAMES_TXT[w] for w in IMAGENET_WNIDS]
    for split, data in (("train", ds.train_x), ("val", ds.test)):
        assert {Path(d.impath).parents[1].name for d in data} == {split}
        assert [Path(d.impath).parent.name for d in data] == [
            w for w in IMAGENET_WNIDS for _ in range(len(data) // 5)
        ]
    folder = tmp_path / "imagenet" / "images" / "train" / IMAGENET_WNIDS[0]
    assert paths(ds.train_x[:8]) == [str(folder / name) for name in sorted(os.listdir(folder))]


# --------------------------------------------------------------------------------------------------
# base / new
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("subsample", ["base", "new"])
def test_base_and_new_classes_are_relabelled_from_zero(one_benchmark, subsample):
    stem, root, layout = one_benchmark
    m = math.ceil(layout.num_classes / 2)
    kept = layout.classnames[:m] if subsample == "base" else layout.classnames[m:]
    ds = build(root, stem, "DATASET.SUBSAMPLE_CLASSES", subsample, "DATASET.VAL_SOURCE", "val")
    assert ds.classnames == kept
    check_split(ds.train_x, kept, layout.sizes["train"])
    check_split(ds.val, kept, layout.sizes["val"])
    check_split(ds.test, kept, layout.sizes["test"])


# --------------------------------------------------------------------------------------------------
# the transductive protocol (PromptKD)
# --------------------------------------------------------------------------------------------------

PROMPTKD = ("TRAINER.NAME", "PromptKD", "DATASET.NUM_SHOTS", "0")


def test_base2novel_trains_on_all_classes_and_tests_base_then_novel(one_benchmark):
    stem, root, layout = one_benchmark
    m = math.ceil(layout.num_classes / 2)
    everything = build(root, stem, "DATASET.VAL_SOURCE", "val")
    ds = build(root, stem, *PROMPTKD, "TRAINER.MODAL", "base2novel")

    assert paths(ds.train_x) == paths(everything.train_x)  # unlabeled images of every class
    assert ds.classnames == layout.classnames
    check_split(ds.val, layout.classnames[:m], layout.sizes["test"])  # base-class test images
    check_split(ds.test, layout.classnames[m:], layout.sizes["test"])  # novel-class test images
    assert sorted(paths(ds.val) + paths(ds.test)) == sorted(paths(everything.test))


def test_base2novel_with_val_source_val_selects_on_the_base_classes_of_the_json_val(one_benchmark):
    stem, root, layout = one_benchmark
    m = math.ceil(layout.num_classes / 2)
    ds = build(root, stem, *PROMPTKD, "DATASET.VAL_SOURCE", "val")
    check_split(ds.val, layout.classnames[:m], layout.sizes["val"])  # ImageNet has no val split: empty
    assert not set(paths(ds.val)) & set(paths(ds.test))
    check_split(ds.test, layout.classnames[m:], layout.sizes["test"])


def test_cross_trains_on_the_target_and_selects_on_its_test_split(one_benchmark):
    stem, root, layout = one_benchmark
    ds = build(root, stem, *PROMPTKD, "TRAINER.MODAL", "cross")
    check_split(ds.train_x, layout.classnames, layout.sizes["train"])
    check_split(ds.test, layout.classnames, layout.sizes["test"])
    assert paths(ds.val) == paths(ds.test)

    honest = build(root, stem, *PROMPTKD, "TRAINER.MODAL", "cross", "DATASET.VAL_SOURCE", "val")
    check_split(honest.val, layout.classnames, layout.sizes["val"])
    assert paths(honest.test) == paths(ds.test)


# --------------------------------------------------------------------------------------------------
# few-shot
# --------------------------------------------------------------------------------------------------


def build_fewshot(root: Path, stem: str, shots: int, seed: int, *opts: str):
    set_random_seed(seed)  # as train.py does before building the data
    return build(
        root, stem, "DATASET.NUM_SHOTS", str(shots), "SEED", str(seed), "DATASET.VAL_SOURCE", "val", *opts
    )


def test_fewshot_picks_k_per_class_per_seed_and_caches_them(one_benchmark):
    stem, root, layout = one_benchmark
    fewshot_dir = root / layout.dataset_dir / "split_fewshot"
    first = build_fewshot(root, stem, 2, 1)
    cache = fewshot_dir / "shot_2-seed_1.json"
    assert cache.is_file()
    cached = json.loads(cache.read_text())
    assert set(cached) == ({"train"} if stem == "imagenet" else {"train", "val"}) | {"source_sha256"}

    check_split(first.train_x, layout.classnames, 2)
    check_split(first.val, layout.classnames, min(2, layout.sizes["val"]))
    assert len({d.impath for d in first.train_x}) == len(first.train_x)

    cache.unlink()  # sampled again, from the same seed
    again = build_fewshot(root, stem, 2, 1)
    assert paths(again.train_x) == paths(first.train_x)
    assert paths(again.val) == paths(first.val)
    assert json.loads(cache.read_text()) == cached

    other = build_fewshot(root, stem, 2, 2)
    assert paths(other.train_x) != paths(first.train_x)
    check_split(other.train_x, layout.classnames, 2)
    assert sorted(p.name for p in fewshot_dir.iterdir()) == ["shot_2-seed_1.json", "shot_2-seed_2.json"]


def test_fewshot_sample_is_drawn_before_base_new_subsampling(one_benchmark):
    stem, root, layout = one_benchmark
    m = math.ceil(layout.num_classes / 2)
    everything = build_fewshot(root, stem, 2, 1)
    base = build_fewshot(root, stem, 2, 1, "DATASET.SUBSAMPLE_CLASSES", "base")
    assert paths(base.train_x) == [d.impath for d in everything.train_x if d.label < m]
    check_split(base.train_x, layout.classnames[:m], 2)


# --------------------------------------------------------------------------------------------------
# ImageNet's preprocessed.json
# --------------------------------------------------------------------------------------------------


def _fail(*args, **kwargs):
    raise AssertionError("the image folders were listed although the cache is up to date")


def imagenet_items(ds) -> tuple[list, list]:
    return [(d.impath, d.label, d.classname) for d in ds.train_x], [
        (d.impath, d.label, d.classname) for d in ds.test
    ]


def test_imagenet_cache_is_written_then_used_instead_of_listing(tmp_path, monkeypatch):
    write_layout("imagenet", tmp_path)
    cache = tmp_path / "imagenet" / "preprocessed.json"
    first = build(tmp_path, "imagenet")
    assert cache.is_file()
    data = json.loads(cache.read_text())
    assert data["train"][0] == [
        Path(first.train_x[0].impath).relative_to(tmp_path / "imagenet" / "images").as_posix(),
        0,
        "tench",
    ]
    assert {split: len(folders) for split, folders in data["folders"].items()} == {"train": 5, "val": 5}
    assert sum(count for _, count in data["folders"]["train"].values()) == 5 * 8

    monkeypatch.setattr(imagenet_module.ImageNet, "_scan", _fail)
    second = build(tmp_path, "imagenet")
    assert imagenet_items(second) == imagenet_items(first)


def test_imagenet_cache_survives_moving_the_data(tmp_path, monkeypatch):
    write_layout("imagenet", tmp_path / "a")
    first = build(tmp_path / "a", "imagenet")
    os.rename(tmp_path / "a", tmp_path / "b")
    monkeypatch.setattr(imagenet_module.ImageNet, "_scan", _fail)
    moved = build(tmp_path / "b", "imagenet")
    assert [p.replace(str(tmp_path / "b"), str(tmp_path / "a")) for p in paths(moved.train_x)] == paths(
        first.train_x
    )


def test_imagenet_cache_is_rebuilt_when_an_image_is_added(tmp_path):
    write_layout("imagenet", tmp_path)
    first = build(tmp_path, "imagenet")
    wnid = IMAGENET_WNIDS[1]
    write_image(tmp_path / "imagenet" / "images" / "train" / wnid / f"{wnid}_99.JPEG", 1, 99)
    second = build(tmp_path, "imagenet")
    assert len(second.train_x) == len(first.train_x) + 1
    assert second.train_x[-1 - 3 * 8].impath.endswith(f"{wnid}_99.JPEG")  # last of class 1, sorted


def test_imagenet_cache_counts_images_of_folders_changed_around_the_scan(tmp_path):
    """A coarse file-system clock can leave a folder's mtime unchanged when an image is added in the same tick:
    for folders modified shortly before the scan, the image count is compared too."""
    write_layout("imagenet", tmp_path)
    first = build(tmp_path, "imagenet")
    stored = json.loads((tmp_path / "imagenet" / "preprocessed.json").read_text())["folders"]["val"]
    folder = tmp_path / "imagenet" / "images" / "val" / IMAGENET_WNIDS[2]
    write_image(folder / "ILSVRC2012_val_00000099.JPEG", 2, 99)
    os.utime(folder, ns=(time.time_ns(), stored[IMAGENET_WNIDS[2]][0]))  # the clock did not move on
    assert len(build(tmp_path, "imagenet").test) == len(first.test) + 1


def test_imagenet_cache_checks_only_folder_mtimes_for_old_folders(tmp_path, monkeypatch):
    write_layout("imagenet", tmp_path)
    an_hour_ago = time.time() - 3600
    for folder in (tmp_path / "imagenet" / "images").glob("*/*"):
        os.utime(folder, (an_hour_ago, an_hour_ago))
    first = build(tmp_path, "imagenet")

    with monkeypatch.context() as patch:  # an up-to-date cache of old folders lists nothing at all
        patch.setattr(imagenet_module.ImageNet, "_scan", _fail)
        patch.setattr(imagenet_module, "_count_entries", _fail)
        assert imagenet_items(build(tmp_path, "imagenet")) == imagenet_items(first)

    sorted((tmp_path / "imagenet" / "images" / "val" / IMAGENET_WNIDS[-1]).iterdir())[-1].unlink()
    second = build(tmp_path, "imagenet")
    assert len(second.test) == len(first.test) - 1


def test_imagenet_cache_is_rebuilt_for_a_new_class_folder_or_new_class_names(tmp_path):
    write_layout("imagenet", tmp_path)
    build(tmp_path, "imagenet")
    for split in ("train", "val"):
        write_image(tmp_path / "imagenet" / "images" / split / "n01496331" / "x.JPEG", 5, 0)
    ds = build(tmp_path, "imagenet")  # the new folder sorts between two others: later labels move up
    assert ds.classnames == [
        "tench",
        "great white shark",
        "hammerhead shark",
        "electric ray",
        "stingray",
        "hen",
    ]
    assert len(ds.test) == 5 * 3 + 1 and ds.lab2cname[4] == "stingray"

    classnames = tmp_path / "imagenet" / "classnames.txt"

    classnames.write_text(classnames.read_text().replace("tench", "tinca tinca"))
    assert build(tmp_path, "imagenet").classnames[0] == "tinca tinca"


def test_imagenet_unreadable_cache_is_rebuilt(tmp_path):
    write_layout("imagenet", tmp_path)
    (tmp_path / "imagenet" / "preprocessed.json").write_text("{not json")
    assert len(build(tmp_path, "imagenet").train_x) == 5 * 8
    assert json.loads((tmp_path / "imagenet" / "preprocessed.json").read_text())["version"] == 1


# --------------------------------------------------------------------------------------------------
# ImageNet variants
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", VARIANTS)
def test_variants_ignore_fewshot_and_subsampling(tmp_path, stem, capsys):
    layout = write_layout(stem, tmp_path)
    ds = build(
        tmp_path,
        stem,
        "DATASET.NUM_SHOTS",
        "2",
        "DATASET.SUBSAMPLE_CLASSES",
        "base",
        "TRAINER.NAME",
        "PromptKD",
    )
    assert ds.classnames == layout.classnames
    assert paths(ds.train_x) == paths(ds.test) and len(ds.test) == layout.sizes["test"] * layout.num_classes
    assert paths(ds.val) == paths(ds.test)  # the student selects on the target's test images, as upstream DG
    assert "ignored" in capsys.readouterr().out
    assert not (tmp_path / layout.dataset_dir / "split_fewshot").exists()


def test_imagenetv2_folder_name_is_the_label_and_classnames_txt_gives_the_name(tmp_path):
    write_layout("imagenetv2", tmp_path)
    ds = build(tmp_path, "imagenetv2")
    assert ds.classnames == list(CLASSNAMES_TXT.values())
    assert [int(Path(d.impath).parent.name) for d in ds.test] == [d.label for d in ds.test]
    assert [d.label for d in ds.test] == [
        y for y in range(12) for _ in range(2)
    ]  # 0..11, not "0", "1", "10", ...


@pytest.mark.parametrize("stem", ["imagenet_a", "imagenet_r"])
def test_imagenet_a_and_r_label_their_own_sorted_folders_and_ignore_readme(tmp_path, stem):
    layout = write_layout(stem, tmp_path)
    ds = build(tmp_path, stem)
    image_dir = Path(ds.test[0].impath).parents[1]
    assert (image_dir / "README.txt").is_file()
    assert not any(p.endswith("README.txt") for p in paths(ds.test))
    wnids = sorted(p.name for p in image_dir.iterdir() if p.is_dir())
    assert len(wnids) == 4 < len(CLASSNAMES_TXT)
    assert [Path(d.impath).parent.name for d in ds.test] == [w for w in wnids for _ in range(2)]
    assert [d.label for d in ds.test] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert ds.classnames == [CLASSNAMES_TXT[w] for w in wnids] == layout.classnames


# --------------------------------------------------------------------------------------------------
# errors say what is missing and how to get it
# --------------------------------------------------------------------------------------------------


def assert_actionable(err: pytest.ExceptionInfo, path: Path) -> None:
    message = str(err.value)
    assert str(path) in message
    assert "prepare_data.py" in message


def test_missing_dataset_folder(tmp_path, any_dataset):
    stem, _, layout = any_dataset
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        build(empty, stem)
    assert_actionable(err, empty / layout.dataset_dir)


@pytest.mark.parametrize("stem", [*sorted(JSON_SPECS), "caltech101"])
def test_missing_split_json(tmp_path, stem):
    layout = write_layout(stem, tmp_path)
    split_file = next((tmp_path / layout.dataset_dir).glob("split_zhou_*.json"))
    split_file.unlink()
    with pytest.raises(FileNotFoundError) as err:
        build(tmp_path, stem)
    assert_actionable(err, split_file)


@pytest.mark.parametrize("filename", ["variants.txt", "images_variant_train.txt", "images_variant_test.txt"])
def test_missing_fgvc_aircraft_file(tmp_path, filename):
    write_layout("fgvc_aircraft", tmp_path)
    (tmp_path / "fgvc_aircraft" / filename).unlink()
    with pytest.raises(FileNotFoundError) as err:
        build(tmp_path, "fgvc_aircraft")
    assert_actionable(err, tmp_path / "fgvc_aircraft" / filename)
    assert "--download fgvc_aircraft" in str(err.value)


def test_fgvc_aircraft_unknown_variant(tmp_path):
    write_layout("fgvc_aircraft", tmp_path)
    test_file = tmp_path / "fgvc_aircraft" / "images_variant_test.txt"
    test_file.write_text(test_file.read_text().replace("Cessna 172", "Cessna 182"))
    with pytest.raises(ValueError, match="'Cessna 182'.*not in variants.txt"):
        build(tmp_path, "fgvc_aircraft")


@pytest.mark.parametrize("stem", ["imagenet", *VARIANTS])
def test_missing_classnames_txt(tmp_path, stem):
    layout = write_layout(stem, tmp_path)
    (tmp_path / layout.dataset_dir / "classnames.txt").unlink()
    with pytest.raises(FileNotFoundError) as err:
        build(tmp_path, stem)
    assert_actionable(err, tmp_path / layout.dataset_dir / "classnames.txt")


def test_missing_imagenet_val_folder(tmp_path):
    write_layout("imagenet", tmp_path)
    val = tmp_path / "imagenet" / "images" / "val"
    val.rename(tmp_path / "imagenet" / "val_elsewhere")
    with pytest.raises(FileNotFoundError) as err:
        build(tmp_path, "imagenet")
    assert_actionable(err, val)


def test_class_folder_missing_from_classnames_txt(tmp_path):
    write_layout("imagenet_sketch", tmp_path)
    write_image(tmp_path / "imagenet-sketch" / "images" / "n99999999" / "sketch_0.JPEG", 0, 0)
    with pytest.raises(ValueError, match="n99999999"):
        build(tmp_path, "imagenet_sketch")


def test_imagenetv2_missing_label_folder(tmp_path):
    write_layout("imagenetv2", tmp_path)
    folder = tmp_path / "imagenetv2" / "imagenetv2-matched-frequency-format-val" / "4"
    for image in folder.iterdir():
        image.unlink()
    folder.rmdir()
    with pytest.raises(FileNotFoundError) as err:
        build(tmp_path, "imagenetv2")
    assert_actionable(err, folder)
