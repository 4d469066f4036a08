"""ImageNet: ``imagenet/images/{train,val}/<wnid>/*.JPEG`` + ``imagenet/classnames.txt``.

1000 classes (500 base / 500 novel). Labels are the index of the wnid in the sorted list of class folders of
the split; class names come from ``classnames.txt`` (``<wnid> <class name words...>``, CLIP's prompt-engineering
names). The ``val`` folder is the test split; there is no val split, so the few-shot cache holds train only.

Two deliberate differences from upstream:

* images within a class folder are sorted (upstream lists them in file-system order, so the image order, and
  with it the few-shot picks, could differ between machines);
* the parsed lists are cached in ``preprocessed.json`` with paths relative to ``images/`` (upstream pickles
  absolute paths to ``preprocessed.pkl``, which goes stale when the data moves). The cache stores each class
  folder's modification time and image count and is rebuilt when a class folder appears, disappears or changes,
  or when ``classnames.txt`` changes; checking it costs one ``stat`` per class folder instead of listing 1.28M
  files.
"""

from __future__ import annotations

import json
import os
import os.path as osp
import time

from dassl.data.datasets import DATASET_REGISTRY, Datum
from dassl.utils import atomic_write_text, listdir_nohidden, read_json

from .common import (
    BenchmarkDataset,
    DatasetError,
    DatasetNotFoundError,
    datums_to_items,
    items_to_datums,
    read_classnames,
)

CACHE_FILE = "preprocessed.json"
CACHE_VERSION = 1
# A folder changed within this long of the scan may change again without getting a new mtime (coarse file-system
# clocks), so for such folders the image count is compared as well.
RACY_NS = 2_000_000_000
SPLIT_DIRS = ("train", "val")  # folders under images/; "val" is served as the test split


@DATASET_REGISTRY.register()
class ImageNet(BenchmarkDataset):
    dataset_dir = "imagenet"
    image_dir_name = "images"
    has_val = False

    def read_data(self):
        classnames = read_classnames(osp.join(self.dataset_dir, "classnames.txt"))
        cache_path = osp.join(self.dataset_dir, CACHE_FILE)
        scanned_ns = time.time_ns()  # taken before the folders are looked at (see RACY_NS)
        mtimes = {split: self._class_folder_mtimes(split) for split in SPLIT_DIRS}

        cache = _read_cache(cache_path)
        if cache is not None:
            if self._cache_is_fresh(cache, classnames, mtimes):
                print(f"Loading preprocessed ImageNet data from {cache_path}")
                return (
                    items_to_datums(cache["train"], self.image_dir),
                    [],
                    items_to_datums(cache["test"], self.image_dir),
                )
            print(f"Rebuilding {cache_path}: the image folders or classnames.txt changed")

        train, train_counts = self._scan(classnames, "train", sorted(mtimes["train"]))
        test, test_counts = self._scan(classnames, "val", sorted(mtimes["val"]))
        counts = {"train": train_counts, "val": test_counts}
        cache = {
            "version": CACHE_VERSION,
            "scanned_ns": scanned_ns,
            "classnames": classnames,
            # {split dir: {wnid: [folder mtime_ns, number of images]}}
            "folders": {s: {w: [mtimes[s][w], counts[s][w]] for w in sorted(mtimes[s])} for s in SPLIT_DIRS},
            "train": datums_to_items(train, self.image_dir),
            "test": datums_to_items(test, self.image_dir),
        }
        try:
            atomic_write_text(cache_path, json.dumps(cache, separators=(",", ":")))  # compact: 1.3M items
            print(f"Saved preprocessed ImageNet data to {cache_path}")
        except OSError as err:
            print(f"Note: could not write {cache_path} ({err}); ImageNet will be listed again next time")
        return train, [], test

    def _class_folder_mtimes(self, split: str) -> dict[str, int]:
        split_dir = osp.join(self.image_dir, split)
        if not osp.isdir(split_dir):
            raise DatasetNotFoundError(
                f"ImageNet folder not found: {split_dir}. Expected images/train/<wnid>/ and images/val/<wnid>/ "
                f"(the val images sorted into wnid folders) under {self.dataset_dir}; "
                "python tools/prepare_data.py --check ImageNet describes the layout."
            )
        with os.scandir(split_dir) as entries:
            return {
                e.name: e.stat().st_mtime_ns for e in entries if e.is_dir() and not e.name.startswith(".")
            }

    def _scan(
        self, classnames: dict[str, str], split: str, wnids: list[str]
    ) -> tuple[list[Datum], dict[str, int]]:
        """Datums of ``images/<split>/<wnid>/*`` (label = index in ``wnids``) and the image count per folder."""
        unknown = [wnid for wnid in wnids if wnid not in classnames]
        if unknown:
            raise DatasetError(
                f"{osp.join(self.image_dir, split)} has class folders that classnames.txt does not list: {unknown[:5]}; "
                "python tools/prepare_data.py --check ImageNet"
            )
        items, counts = [], {}
        for label, wnid in enumerate(wnids):
            folder = osp.join(self.image_dir, split, wnid)
            imnames = listdir_nohidden(folder, sort=True)
            counts[wnid] = len(imnames)
            items += [
                Datum(impath=osp.join(folder, name), label=label, classname=classnames[wnid])
                for name in imnames
            ]
        return items, counts

    def _cache_is_fresh(
        self, cache: dict, classnames: dict[str, str], mtimes: dict[str, dict[str, int]]
    ) -> bool:
        try:
            if cache["version"] != CACHE_VERSION or cache["classnames"] != classnames:
                return False
            racy_after = cache["scanned_ns"] - RACY_NS
            for split in SPLIT_DIRS:
                stored = cache["folders"][split]
                if stored.keys() != mtimes[split].keys():
                    return False
                for wnid, (mtime_ns, count) in stored.items():
                    if mtimes[split][wnid] != mtime_ns:
                        return False
                    if (
                        mtime_ns >= racy_after
                        and _count_entries(osp.join(self.image_dir, split, wnid)) != count
                    ):
                        return False
            return True
        except (KeyError, TypeError, ValueError):
            return False


def _read_cache(path: str) -> dict | None:
    if not osp.isfile(path):
        return None
    try:
        cache = read_json(path)
    except (OSError, ValueError) as err:
        print(f"Ignoring unreadable {path} ({err})")
        return None
    return cache if isinstance(cache, dict) else None


def _count_entries(folder: str) -> int:
    """The number of visible entries, as ``listdir_nohidden`` would list them."""
    with os.scandir(folder) as entries:
        return sum(1 for e in entries if not e.name.startswith("."))
