"""Logic shared by every dataset class: split files, base/novel subsampling, few-shot sampling and its cache.

Split files use the CoOp format ``{"train": [[relpath, label, classname], ...], "val": [...], "test": [...]}``
with paths relative to the image directory. Few-shot picks are cached per (shots, seed) as JSON in the same
format, so a run is reproducible and the cache is safe to read (no pickles).
"""

from __future__ import annotations

import math
import os
import os.path as osp

from dassl.data.datasets import DatasetBase, Datum
from dassl.utils import mkdir_if_missing, read_json, write_json

SUBSAMPLE_CHOICES = ("all", "base", "new")


def read_split(filepath: str, path_prefix: str) -> tuple[list[Datum], list[Datum], list[Datum]]:
    """Read a CoOp split json; image paths are joined to ``path_prefix``."""
    if not osp.isfile(filepath):
        raise FileNotFoundError(
            f"Split file not found: {filepath}. Every benchmark needs the CoOp split json in its dataset folder "
            "(see the README's 'Preparing datasets' section)."
        )
    print(f"Reading split from {filepath}")
    split = read_json(filepath)
    if not isinstance(split, dict) or "train" not in split or "test" not in split:
        raise ValueError(
            f"Split file {filepath} must be a json object with 'train', 'val' and 'test' lists of "
            "[relative_path, label, classname]; re-download it."
        )
    return tuple(_to_datums(split.get(name, []), path_prefix) for name in ("train", "val", "test"))  # type: ignore[return-value]


def _to_datums(items: list, path_prefix: str) -> list[Datum]:
    return [Datum(impath=osp.join(path_prefix, impath), label=int(label), classname=classname) for impath, label, classname in items]


def _to_items(data: list[Datum], path_prefix: str) -> list[list]:
    out = []
    for item in data:
        impath = item.impath.replace(path_prefix, "")
        if impath.startswith(os.sep):
            impath = impath[1:]
        out.append([impath, item.label, item.classname])
    return out


def save_split(train: list[Datum], val: list[Datum], test: list[Datum], filepath: str, path_prefix: str) -> None:
    """Write a CoOp split json with paths relative to ``path_prefix``."""
    split = {name: _to_items(data, path_prefix) for name, data in (("train", train), ("val", val), ("test", test))}
    write_json(split, filepath)
    print(f"Saved split to {filepath}")


def subsample_classes(*args: list[Datum], subsample: str = "all") -> list[list[Datum]] | tuple:
    """Keep the base (first ceil(n/2) sorted labels) or new (the rest) classes and relabel them from 0.

    The label set comes from the first data source (train); every source is filtered with it.
    """
    if subsample not in SUBSAMPLE_CHOICES:
        raise ValueError(f"DATASET.SUBSAMPLE_CLASSES must be one of {SUBSAMPLE_CHOICES}, got '{subsample}'")
    if subsample == "all":
        return args

    labels = sorted({item.label for item in args[0]})
    m = math.ceil(len(labels) / 2)
    print(f"SUBSAMPLE {subsample.upper()} CLASSES!")
    selected = labels[:m] if subsample == "base" else labels[m:]
    relabeler = {y: y_new for y_new, y in enumerate(selected)}

    output = []
    for dataset in args:
        dataset_new = [
            Datum(impath=item.impath, label=relabeler[item.label], classname=item.classname)
            for item in dataset
            if item.label in relabeler
        ]
        output.append(dataset_new)
    return output


def fewshot_split(
    dataset: DatasetBase,
    train: list[Datum],
    val: list[Datum],
    num_shots: int,
    seed: int,
    fewshot_dir: str,
    path_prefix: str,
) -> tuple[list[Datum], list[Datum]]:
    """``num_shots`` train images and ``min(num_shots, 4)`` val images per class, cached per (shots, seed).

    Sampling happens over all classes, before base/new subsampling, with python's global RNG (seeded by
    train.py), in the same order as upstream, so the same seed picks the same images.
    """
    mkdir_if_missing(fewshot_dir)
    cache = osp.join(fewshot_dir, f"shot_{num_shots}-seed_{seed}.json")
    if osp.exists(cache):
        print(f"Loading preprocessed few-shot data from {cache}")
        data = read_json(cache)
        return _to_datums(data["train"], path_prefix), _to_datums(data["val"], path_prefix)
    train = dataset.generate_fewshot_dataset(train, num_shots=num_shots)
    val = dataset.generate_fewshot_dataset(val, num_shots=min(num_shots, 4))
    write_json({"train": _to_items(train, path_prefix), "val": _to_items(val, path_prefix)}, cache)
    print(f"Saving preprocessed few-shot data to {cache}")
    return train, val
