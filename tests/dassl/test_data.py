"""Transforms, DataManager/DatasetWrapper, base/new subsampling and few-shot picks (reference-promptkd.md §5, §8)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.transforms import (
    CenterCrop,
    Compose,
    InterpolationMode,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)

import datasets  # noqa: F401  (registers Caltech101)
from dassl.config import get_cfg_default
from dassl.data import DataManager, DatasetWrapper
from dassl.data.transforms import build_transform
from dassl.utils import set_random_seed
from datasets.common import read_split
from tests.conftest import make_tiny_caltech
from trainers.config import extend_cfg


def build_dataset(cfg):
    """The dataset as a run sees it: the dataset class's splits through the run's evaluation protocol."""
    return DataManager(cfg).dataset

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
TINY_CLASSNAMES = ["face", "leopard", "airplane", "anchor"]
BATCH_KEYS = {"img", "label", "domain", "impath", "index"}


def promptkd_input_cfg(size: tuple[int, int] = (224, 224)):
    """The INPUT settings of every PromptKD/PromptSRC/CoOp yaml."""
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.INPUT.SIZE = size
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "random_flip", "normalize")
    cfg.INPUT.PIXEL_MEAN = list(CLIP_MEAN)
    cfg.INPUT.PIXEL_STD = list(CLIP_STD)
    return cfg


def data_cfg(root: Path, train_bs: int = 5, test_bs: int = 5, **dataset):
    cfg = promptkd_input_cfg((32, 32))
    cfg.DATASET.NAME = "Caltech101"
    cfg.DATASET.ROOT = str(root)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = train_bs
    cfg.DATALOADER.TEST.BATCH_SIZE = test_bs
    cfg.USE_CUDA = False
    cfg.DATASET.VAL_SOURCE = "val"  # these tests look at the json val split; the default (test) is tested below
    for key, value in dataset.items():
        setattr(cfg.DATASET, key, value)
    return cfg


def rel_items(data, image_dir: Path) -> list[list]:
    """Datum list -> ``[path relative to the image dir, label, classname]`` (the split-json/golden format)."""
    return [[Path(os.path.relpath(d.impath, image_dir)).as_posix(), d.label, d.classname] for d in data]


# --------------------------------------------------------------------------------------------------
# build_transform
# --------------------------------------------------------------------------------------------------


def test_train_transform_for_promptkd_config():
    tfm = build_transform(promptkd_input_cfg(), is_train=True)
    assert isinstance(tfm, Compose)
    ops = tfm.transforms
    assert [type(op) for op in ops] == [RandomResizedCrop, RandomHorizontalFlip, ToTensor, Normalize]
    rrc, flip, _, norm = ops
    assert tuple(rrc.size) == (224, 224)
    assert tuple(rrc.scale) == (0.08, 1.0)
    assert rrc.interpolation == InterpolationMode.BICUBIC
    assert flip.p == 0.5
    assert list(norm.mean) == CLIP_MEAN and list(norm.std) == CLIP_STD


def test_train_transform_output_shape_and_range():
    tfm = build_transform(promptkd_input_cfg((32, 32)), is_train=True)
    img = Image.new("RGB", (50, 37), (10, 200, 30))
    out = tfm(img)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    expected = (torch.tensor([10, 200, 30]) / 255.0 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(out[:, 16, 16], expected, rtol=0, atol=1e-5)


def test_test_transform_for_promptkd_config():
    tfm = build_transform(promptkd_input_cfg(), is_train=False)
    ops = tfm.transforms
    assert [type(op) for op in ops] == [Resize, CenterCrop, ToTensor, Normalize]
    resize, crop, _, norm = ops
    # the shorter side goes to 224 (an int size, not (224, 224))
    assert resize.size in (224, [224], (224,))
    assert resize.interpolation == InterpolationMode.BICUBIC
    assert tuple(crop.size) == (224, 224)
    assert list(norm.mean) == CLIP_MEAN and list(norm.std) == CLIP_STD


@pytest.mark.parametrize("wh", [(300, 251), (240, 400)])
def test_test_transform_equals_torchvision_ops_by_hand(wh):
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (wh[1], wh[0], 3), generator=g, dtype=torch.uint8).numpy()
    img = Image.fromarray(pixels, mode="RGB")
    got = build_transform(promptkd_input_cfg(), is_train=False)(img)

    x = Resize(224, interpolation=InterpolationMode.BICUBIC)(img)
    assert min(x.size) == 224
    x = CenterCrop(224)(x)
    x = ToTensor()(x)
    expected = Normalize(mean=CLIP_MEAN, std=CLIP_STD)(x)
    assert got.shape == (3, 224, 224)
    assert torch.equal(got, expected)


def test_test_transform_without_normalize_has_no_normalize():
    cfg = promptkd_input_cfg()
    cfg.INPUT.TRANSFORMS = ("random_flip",)
    ops = build_transform(cfg, is_train=False).transforms
    assert [type(op) for op in ops] == [Resize, CenterCrop, ToTensor]


def test_train_transform_without_crop_resizes_to_the_input_size():
    cfg = promptkd_input_cfg((32, 48))
    cfg.INPUT.TRANSFORMS = ("random_flip", "normalize")
    ops = build_transform(cfg, is_train=True).transforms
    assert [type(op) for op in ops] == [Resize, RandomHorizontalFlip, ToTensor, Normalize]
    assert tuple(ops[0].size) == (32, 48)


def test_unknown_transform_name_raises_value_error_naming_it():
    cfg = promptkd_input_cfg()
    cfg.INPUT.TRANSFORMS = ("random_flip", "fancy_warp")
    for is_train in (True, False):
        with pytest.raises(ValueError, match="fancy_warp"):
            build_transform(cfg, is_train=is_train)
    with pytest.raises(ValueError, match="shiny_aug"):
        build_transform(promptkd_input_cfg(), is_train=True, choices=["shiny_aug"])


def test_choices_argument_overrides_input_transforms():
    ops = build_transform(promptkd_input_cfg(), is_train=True, choices=["normalize"]).transforms
    assert [type(op) for op in ops] == [Resize, ToTensor, Normalize]


def test_no_transform_gives_none():
    cfg = promptkd_input_cfg()
    cfg.INPUT.NO_TRANSFORM = True
    assert build_transform(cfg, is_train=True) is None
    assert build_transform(cfg, is_train=False) is None


# --------------------------------------------------------------------------------------------------
# DataManager on a tiny Caltech101
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_root(tmp_path) -> Path:
    # 4 classes x (4 train, 2 val, 3 test) = 16 / 8 / 12 images
    return make_tiny_caltech(tmp_path / "data")


def test_datamanager_batches_and_metadata(tiny_root):
    dm = DataManager(data_cfg(tiny_root, train_bs=5, test_bs=5))
    assert dm.num_classes == 4
    assert dm.lab2cname == dict(enumerate(TINY_CLASSNAMES))
    assert dm.dataset.classnames == TINY_CLASSNAMES
    assert dm.num_source_domains == 0
    assert dm.train_loader_u is None
    assert len(dm.dataset.train_x) == 16 and len(dm.dataset.val) == 8 and len(dm.dataset.test) == 12

    batch = next(iter(dm.train_loader_x))
    assert set(batch) == BATCH_KEYS
    assert batch["img"].shape == (5, 3, 32, 32) and batch["img"].dtype == torch.float32
    assert batch["label"].shape == (5,) and batch["label"].dtype == torch.int64
    assert batch["domain"].tolist() == [0] * 5
    assert len(batch["impath"]) == 5 and all(isinstance(p, str) for p in batch["impath"])
    for idx, label, path in zip(batch["index"].tolist(), batch["label"].tolist(), batch["impath"]):
        item = dm.dataset.train_x[idx]
        assert item.label == label and item.impath == path


def test_train_loader_drops_last_when_enough_data(tiny_root):
    n, bs = 16, 5
    dm = DataManager(data_cfg(tiny_root, train_bs=bs))
    assert dm.train_loader_x.drop_last
    assert len(dm.train_loader_x) == n // bs == 3
    sizes = [len(b["label"]) for b in dm.train_loader_x]
    assert sizes == [bs] * 3
    # RandomSampler: every index at most once per epoch
    indices = [i for b in dm.train_loader_x for i in b["index"].tolist()]
    assert len(set(indices)) == len(indices) == 15


def test_train_loader_keeps_a_single_short_batch_when_data_is_smaller(tiny_root):
    dm = DataManager(data_cfg(tiny_root, train_bs=20))
    assert not dm.train_loader_x.drop_last
    assert len(dm.train_loader_x) == 1
    (batch,) = list(dm.train_loader_x)
    assert batch["img"].shape == (16, 3, 32, 32)
    assert sorted(batch["index"].tolist()) == list(range(16))


def test_train_loader_exact_multiple(tiny_root):
    dm = DataManager(data_cfg(tiny_root, train_bs=16))
    assert len(dm.train_loader_x) == 1 and dm.train_loader_x.drop_last


def test_test_loader_is_sequential_and_keeps_the_last_batch(tiny_root):
    dm = DataManager(data_cfg(tiny_root, test_bs=5))
    assert not dm.test_loader.drop_last
    assert len(dm.test_loader) == math.ceil(12 / 5)
    labels, paths, indices, sizes = [], [], [], []
    for batch in dm.test_loader:
        assert set(batch) == BATCH_KEYS
        assert batch["img"].shape[1:] == (3, 32, 32)
        labels += batch["label"].tolist()
        paths += list(batch["impath"])
        indices += batch["index"].tolist()
        sizes.append(len(batch["label"]))
    assert sizes == [5, 5, 2]
    assert indices == list(range(12))
    assert labels == [d.label for d in dm.dataset.test] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert paths == [d.impath for d in dm.dataset.test]
    # val loader exists (the split has val images) and is sequential too
    assert dm.val_loader is not None
    assert [i for b in dm.val_loader for i in b["index"].tolist()] == list(range(8))


def test_test_loader_output_equals_test_transform(tiny_root):
    cfg = data_cfg(tiny_root, test_bs=12)
    dm = DataManager(cfg)
    batch = next(iter(dm.test_loader))
    tfm = build_transform(cfg, is_train=False)
    for i in (0, 5, 11):
        expected = tfm(Image.open(dm.dataset.test[i].impath).convert("RGB"))
        assert torch.equal(batch["img"][i], expected)


def test_val_loader_is_none_without_val_images(tiny_root):
    split_path = tiny_root / "caltech-101" / "split_zhou_Caltech101.json"
    split = json.loads(split_path.read_text())
    split["val"] = []
    split_path.write_text(json.dumps(split))
    dm = DataManager(data_cfg(tiny_root))
    assert dm.dataset.val == []
    assert dm.val_loader is None
    assert dm.test_loader is not None and len(dm.dataset.test) == 12


def test_datamanager_with_custom_transforms(tiny_root):
    custom = Compose([Resize((8, 8)), ToTensor()])
    dm = DataManager(data_cfg(tiny_root), custom_tfm_train=custom, custom_tfm_test=custom)
    assert next(iter(dm.train_loader_x))["img"].shape[1:] == (3, 8, 8)
    assert next(iter(dm.test_loader))["img"].shape[1:] == (3, 8, 8)


def test_dataset_wrapper_k_transforms_and_img0(tiny_root):
    cfg = data_cfg(tiny_root)
    cfg.DATALOADER.K_TRANSFORMS = 2
    cfg.DATALOADER.RETURN_IMG0 = True
    data = build_dataset(cfg).train_x
    tfm = build_transform(cfg, is_train=True)
    out = DatasetWrapper(cfg, data, transform=tfm, is_train=True)[3]
    assert set(out) == BATCH_KEYS | {"img0"}
    assert isinstance(out["img"], list) and len(out["img"]) == 2
    assert out["img0"].shape == (3, 32, 32)
    assert out["index"] == 3 and out["impath"] == data[3].impath
    # K_TRANSFORMS applies only to training
    out = DatasetWrapper(cfg, data, transform=tfm, is_train=False)[3]
    assert isinstance(out["img"], torch.Tensor)


def test_unreadable_image_error_names_path_and_index(tiny_root):
    cfg = data_cfg(tiny_root, test_bs=4)
    dm = DataManager(cfg)
    bad_index = 7
    bad_path = dm.dataset.test[bad_index].impath
    Path(bad_path).write_bytes(b"this is not a jpeg \x00\x01\x02" * 10)
    with pytest.raises(OSError) as info:
        for _ in dm.test_loader:
            pass
    message = str(info.value)
    assert bad_path in message
    assert re.search(rf"\b{bad_index}\b", message.replace(bad_path, "")), message


# --------------------------------------------------------------------------------------------------
# base / new subsampling
# --------------------------------------------------------------------------------------------------

FIVE_CLASSES = ("Faces", "Leopards", "airplanes", "anchor", "ant")
FIVE_NAMES = ["face", "leopard", "airplane", "anchor", "ant"]


@pytest.mark.parametrize(
    ("subsample", "kept"),
    [("base", FIVE_NAMES[:3]), ("new", FIVE_NAMES[3:]), ("all", FIVE_NAMES)],
)
def test_subsample_classes_relabels_from_zero(tmp_path, subsample, kept):
    root = make_tiny_caltech(tmp_path / "data", classes=FIVE_CLASSES, n_train=2, n_val=1, n_test=2)
    ds = build_dataset(data_cfg(root, SUBSAMPLE_CLASSES=subsample))
    assert ds.classnames == kept
    assert ds.num_classes == len(kept)
    assert ds.lab2cname == dict(enumerate(kept))
    for split, per_class in ((ds.train_x, 2), (ds.val, 1), (ds.test, 2)):
        assert sorted({d.classname for d in split}) == sorted(kept)
        assert [d.label for d in split] == [k for k in range(len(kept)) for _ in range(per_class)]
        for d in split:
            assert kept[d.label] == d.classname


def test_subsample_new_through_datamanager(tmp_path):
    root = make_tiny_caltech(tmp_path / "data", classes=FIVE_CLASSES, n_train=2, n_val=1, n_test=2)
    dm = DataManager(data_cfg(root, test_bs=10, SUBSAMPLE_CLASSES="new"))
    assert dm.num_classes == 2
    assert dm.lab2cname == {0: "anchor", 1: "ant"}
    batch = next(iter(dm.test_loader))
    assert batch["label"].tolist() == [0, 0, 1, 1]
    assert all("/anchor/" in p or "/ant/" in p for p in batch["impath"])


def test_unknown_subsample_value_raises(tiny_root):
    with pytest.raises(ValueError, match="SUBSAMPLE_CLASSES"):
        build_dataset(data_cfg(tiny_root, SUBSAMPLE_CLASSES="novel"))


# --------------------------------------------------------------------------------------------------
# few-shot picks vs the original code (golden engine fixture)
# --------------------------------------------------------------------------------------------------


def copy_golden_data(golden_dir: Path, dest: Path) -> Path:
    """Copy the read-only golden dataset (the few-shot cache is written into the dataset folder)."""
    shutil.copytree(golden_dir / "data" / "caltech-101", dest / "caltech-101")
    for dirpath, _, _ in os.walk(dest):
        os.chmod(dirpath, os.stat(dirpath).st_mode | stat.S_IWUSR)
    return dest


def golden_picks(golden_dir: Path, key: str) -> dict:
    manifest = json.loads((golden_dir / "engine" / "manifest.json").read_text())
    return manifest["fewshot"]["picks"][key]


def fewshot_cfg(root: Path, shots: int, seed: int, subsample: str):
    cfg = data_cfg(root, NUM_SHOTS=shots, SUBSAMPLE_CLASSES=subsample)
    cfg.SEED = seed
    cfg.TRAINER.NAME = "PromptSRC"
    cfg.TEST.FINAL_MODEL = "best_val"  # the view's val = the selection evaluation's images
    cfg.VERBOSE = False
    return cfg


def build_seeded(root: Path, shots: int, seed: int, subsample: str, **dataset):
    set_random_seed(seed)  # as train.py does before building the trainer
    cfg = fewshot_cfg(root, shots, seed, subsample)
    for key, value in dataset.items():
        setattr(cfg.DATASET, key, value)
    return build_dataset(cfg)


FEWSHOT_CASES = [("NUM_SHOTS=2,SEED=1", 2, 1), ("NUM_SHOTS=2,SEED=2", 2, 2), ("NUM_SHOTS=16,SEED=1", 16, 1)]


@pytest.mark.parametrize(("key", "shots", "seed"), FEWSHOT_CASES, ids=[c[0] for c in FEWSHOT_CASES])
@pytest.mark.parametrize("subsample", ["base", "all"])
def test_fewshot_picks_match_golden(golden_dir, tmp_path, key, shots, seed, subsample):
    root = copy_golden_data(golden_dir, tmp_path / "data")
    image_dir = root / "caltech-101" / "101_ObjectCategories"
    golden = golden_picks(golden_dir, key)

    ds = build_seeded(root, shots, seed, subsample)

    cache = root / "caltech-101" / "split_fewshot" / f"shot_{shots}-seed_{seed}.json"
    assert cache.is_file()
    cached = json.loads(cache.read_text())
    assert cached["train"] == golden["picked_train_before_subsampling"]
    assert cached["val"] == golden["picked_val_before_subsampling"]

    expected = golden[f"SUBSAMPLE_CLASSES={subsample}"]
    assert ds.classnames == expected["classnames"]
    assert rel_items(ds.train_x, image_dir) == expected["train_x"]
    assert rel_items(ds.test, image_dir) == expected["test"]
    if subsample == "all":
        assert rel_items(ds.train_x, image_dir) == golden["picked_train_before_subsampling"]


def test_fewshot_val_matches_golden(golden_dir, tmp_path):
    """Upstream PromptKD's dataset classes pass val = test; the golden fixture records that."""
    key, shots, seed = FEWSHOT_CASES[0]
    root = copy_golden_data(golden_dir, tmp_path / "data")
    image_dir = root / "caltech-101" / "101_ObjectCategories"
    golden = golden_picks(golden_dir, key)
    for subsample in ("base", "all"):
        expected = golden[f"SUBSAMPLE_CLASSES={subsample}"]
        assert expected["val"] == expected["test"]  # what the fixture means by val
        ds = build_seeded(root, shots, seed, subsample, VAL_SOURCE="test")
        assert rel_items(ds.val, image_dir) == expected["val"]


def test_fewshot_cache_is_reused_whatever_the_global_rng(golden_dir, tmp_path):
    root = copy_golden_data(golden_dir, tmp_path / "data")
    image_dir = root / "caltech-101" / "101_ObjectCategories"
    golden = golden_picks(golden_dir, "NUM_SHOTS=2,SEED=1")
    cache = root / "caltech-101" / "split_fewshot" / "shot_2-seed_1.json"

    first = build_seeded(root, 2, 1, "all")
    content = cache.read_bytes()

    # with a different global seed and no cache, the picks would differ ...
    full_train, _, _ = read_split(str(root / "caltech-101" / "split_zhou_Caltech101.json"), str(image_dir))
    set_random_seed(12345)
    fresh = first.generate_fewshot_dataset(full_train, num_shots=2)
    assert rel_items(fresh, image_dir) != golden["picked_train_before_subsampling"]

    # ... but a second build with the same (shots, seed) reads the cache
    set_random_seed(12345)
    second = build_dataset(fewshot_cfg(root, 2, 1, "all"))
    assert rel_items(second.train_x, image_dir) == rel_items(first.train_x, image_dir)
    assert rel_items(second.train_x, image_dir) == golden["picked_train_before_subsampling"]
    assert rel_items(second.val, image_dir) == rel_items(first.val, image_dir)
    assert cache.read_bytes() == content

    # the cache is what is read: editing it changes the next build
    data = json.loads(content)
    data["train"] = data["train"][:1] + data["train"][2:]
    cache.write_text(json.dumps(data))
    third = build_seeded(root, 2, 1, "all")
    assert rel_items(third.train_x, image_dir) == data["train"]


def test_base_and_all_share_one_fewshot_cache(golden_dir, tmp_path):
    """The sample is drawn over all classes: the base picks are the all-class picks of the base classes."""
    root = copy_golden_data(golden_dir, tmp_path / "data")
    image_dir = root / "caltech-101" / "101_ObjectCategories"
    base = build_seeded(root, 2, 1, "base")
    everything = build_seeded(root, 2, 1, "all")
    base_items = rel_items(base.train_x, image_dir)
    all_items = rel_items(everything.train_x, image_dir)
    assert base_items == [item for item in all_items if item[1] < 5]
    assert len(list((root / "caltech-101" / "split_fewshot").iterdir())) == 1
