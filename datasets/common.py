"""Logic shared by every dataset class: split files and few-shot sampling with its cache. A dataset file only says
where its files are and how to read them; it returns the **full** train / val / test splits of all its classes.

Split files use the benchmark split format ``{"train": [[relpath, label, classname], ...], "val": [...], "test": [...]}``
with paths relative to the image directory. Few-shot picks are cached per (shots, seed) as JSON in the same
format, so a run is reproducible and the cache is safe to read.

Which classes a method sees, which images it is selected and tested on, and what the numbers count as is the
evaluation protocol's business (``dassl/evaluation/protocol.py``), not the datasets'.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import os.path as osp
import pickle
import shlex
from typing import Any

from dassl.data.datasets import DatasetBase, Datum
from dassl.utils import mkdir_if_missing, read_json, write_json
from dassl.utils.errors import UserError
from dassl.utils.torchtools import preserved_rng_state

# ----------------------------------------------------------------------------------------------------------
# split files


class DatasetError(UserError, ValueError):
    """A dataset file (split json, class names) that cannot be used as it is; the message names it and the fix."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset folder or file that is not where the dataset class looks for it."""


MAX_LISTED_PROBLEMS = 5


def prepare_command(dataset: str, action: str = "--check", root: str | None = None) -> str:
    """The ``tools/prepare_data.py`` command for a benchmark dataset (by class name or config stem)."""
    from .catalog import find_dataset

    try:
        stem = find_dataset(dataset).stem
    except KeyError:
        stem = dataset
    root_opt = f" --root {shlex.quote(root)}" if root else ""
    return f"python tools/prepare_data.py{root_opt} {action} {stem}"


def split_problems(split: Any, required: tuple[str, ...] = ("train", "test")) -> list[str]:
    """What keeps a parsed benchmark split from being read: its shape (the ``required`` lists), malformed entries, a
    label with two class names, labels outside ``0..n-1`` for the ``n`` classes it names (the model has ``n``
    outputs, so a larger label fails deep in the loss). Empty when usable. ``tools/prepare_data.py`` applies the
    same rules."""
    if not isinstance(split, dict):
        return [f"expected a json object with 'train', 'val' and 'test' lists, found a {type(split).__name__}"]
    lacking = [part for part in required if not isinstance(split.get(part), list)]
    if lacking:
        return [f"lacks the list(s) {lacking} (needs {', '.join(repr(p) for p in required)})"]
    bad: list[str] = []
    first_name: dict[int, tuple[str, str]] = {}  # label -> (class name, where it was first seen)
    clashes: dict[int, set[str]] = {}
    for part in ("train", "val", "test"):
        entries = split.get(part, [])
        if not isinstance(entries, list):
            bad.append(f"'{part}' is a {type(entries).__name__}, not a list")
            continue
        for index, entry in enumerate(entries):
            where = f"{part}[{index}]"
            if not (
                isinstance(entry, list)
                and len(entry) == 3
                and isinstance(entry[0], str)
                and isinstance(entry[1], int)
                and not isinstance(entry[1], bool)
                and isinstance(entry[2], str)
            ):
                bad.append(f"{where} = {json.dumps(entry)[:80]}")
                continue
            _, label, classname = entry
            seen = first_name.setdefault(label, (classname, where))
            if seen[0] != classname:
                clashes.setdefault(label, {f"'{seen[0]}' ({seen[1]})"}).add(f"'{classname}' ({where})")
    problems = []
    if bad:
        more = f"\n    ... and {len(bad) - MAX_LISTED_PROBLEMS} more" if len(bad) > MAX_LISTED_PROBLEMS else ""
        listed = "".join(f"\n    {b}" for b in bad[:MAX_LISTED_PROBLEMS])
        problems.append(f"{len(bad)} entries of the split are not [relative_path, int_label, classname]:{listed}{more}")
    problems += [f"label {y} has more than one class name: {', '.join(sorted(n))}" for y, n in sorted(clashes.items())]
    n_classes = len(first_name)
    outside = sorted(y for y in first_name if not 0 <= y < n_classes)
    if outside:
        problems.append(
            f"labels {outside} are beyond the class count: the split names {n_classes} classes, so the labels must "
            f"be 0..{n_classes - 1} (label {outside[0]} first appears in {first_name[outside[0]][1]})"
        )
    return problems


def read_split(
    filepath: str, path_prefix: str, dataset: str = "<dataset>", fix: str | None = None
) -> tuple[list[Datum], list[Datum], list[Datum]]:
    """Read a benchmark split json; image paths are joined to ``path_prefix``.

    A missing, unparsable or inconsistent file is a ``DatasetError`` that names it, says what is wrong (json
    position, entries, labels) and gives ``fix`` (default: the ``prepare_data.py`` commands for ``dataset``).
    """
    fix = fix or (
        f"check it with `{prepare_command(dataset)}`; a fresh copy comes with `{prepare_command(dataset, '--download')}`"
    )
    if not osp.isfile(filepath):
        raise DatasetNotFoundError(
            f"Split file not found: {filepath}. Every benchmark needs the benchmark split json in its dataset folder. "
            f"Fix: {fix}. For a folder-per-class dataset, python tools/prepare_data.py --make-split {dataset} --seed 1 "
            "writes a seeded random split instead, as the original code draws one (numbers on it are not comparable "
            "with published ones)."
        )
    print(f"Reading split from {filepath}")
    try:
        split = read_json(filepath)
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"Split file {filepath} is not valid json: {err.msg} at line {err.lineno}, column {err.colno} "
            f"(expected {{\"train\": [[relative_path, label, classname], ...], \"val\": [...], \"test\": [...]}}). "
            f"Fix: {fix}"
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"Cannot read split file {filepath} ({err}). Fix: {fix}") from err
    problems = split_problems(split)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise DatasetError(f"Split file {filepath} cannot be used:\n{listed}\nFix: {fix}")
    return tuple(items_to_datums(split.get(name, []), path_prefix) for name in ("train", "val", "test"))  # type: ignore[return-value]


def items_to_datums(items: list, path_prefix: str) -> list[Datum]:
    """``[[relpath, label, classname], ...]`` -> Datum list with paths under ``path_prefix``."""
    return [
        Datum(impath=osp.join(path_prefix, impath), label=int(label), classname=classname)
        for impath, label, classname in items
    ]


def datums_to_items(data: list[Datum], path_prefix: str) -> list[list]:
    """Datum list -> ``[[relpath, label, classname], ...]`` with paths relative to ``path_prefix``."""
    return [[osp.relpath(item.impath, path_prefix), item.label, item.classname] for item in data]


def save_split(train: list[Datum], val: list[Datum], test: list[Datum], filepath: str, path_prefix: str) -> None:
    """Write a benchmark split json with paths relative to ``path_prefix``."""
    split = {name: datums_to_items(data, path_prefix) for name, data in (("train", train), ("val", val), ("test", test))}
    write_json(split, filepath)
    print(f"Saved split to {filepath}")


def generate_split(
    image_dir: str,
    seed: int,
    p_train: float = 0.5,
    p_val: float = 0.2,
    ignored: tuple[str, ...] = (),
    new_cnames: dict[str, str] | None = None,
) -> tuple[list[Datum], list[Datum], list[Datum]]:
    """A random train / val / test split of a folder-per-class image dir, as upstream's ``read_and_split_data``
    draws one when a split json is missing (per class: shuffle, round(n * p_train) train, round(n * p_val) val,
    the rest test; labels follow the sorted folder names). Reproducible: folders and files are listed sorted and
    shuffled by ``random.Random(seed)`` (upstream shuffles the unsorted listing with the global RNG)."""
    import random

    rng = random.Random(seed)
    categories = sorted(c for c in os.listdir(image_dir) if not c.startswith(".") and c not in ignored
                        and osp.isdir(osp.join(image_dir, c)))  # fmt: skip
    splits: tuple[list[Datum], list[Datum], list[Datum]] = ([], [], [])
    for label, category in enumerate(categories):
        folder = osp.join(image_dir, category)
        images = sorted(f for f in os.listdir(folder) if not f.startswith("."))
        rng.shuffle(images)
        n_train, n_val = round(len(images) * p_train), round(len(images) * p_val)
        if n_train < 1 or n_val < 1 or len(images) - n_train - n_val < 1:
            raise ValueError(f"{folder} has {len(images)} images: too few for a train / val / test split")
        classname = (new_cnames or {}).get(category, category)
        parts = (images[:n_train], images[n_train : n_train + n_val], images[n_train + n_val :])
        for split, names in zip(splits, parts):
            split.extend(Datum(impath=osp.join(folder, name), label=label, classname=classname) for name in names)
    return splits


def read_classnames(text_file: str) -> dict[str, str]:
    """ImageNet's ``classnames.txt``: one ``<wnid> <class name words...>`` per line -> {wnid: name}, in file order."""
    if not osp.isfile(text_file):
        raise DatasetNotFoundError(
            f"Class-name file not found: {text_file}. python tools/prepare_data.py --download <dataset> writes it."
        )
    classnames: dict[str, str] = {}
    with open(text_file, encoding="utf-8") as f:
        for line in f:
            parts = line.strip().split(" ")
            if parts and parts[0]:
                classnames[parts[0]] = " ".join(parts[1:])
    return classnames


# ----------------------------------------------------------------------------------------------------------
# few-shot


class _UpstreamDatumUnpickler(pickle.Unpickler):
    """Reads upstream few-shot ``.pkl`` caches: only Datum objects and plain containers are allowed."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("dassl.data.datasets.base_dataset", "Datum"):
            return Datum
        if (module, name) == ("copyreg", "_reconstructor"):
            import copyreg

            return copyreg._reconstructor
        if (module, name) == ("builtins", "object"):
            return object
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an upstream few-shot cache")


def _reroot(impath: str, path_prefix: str) -> str:
    """Map an absolute path from another machine onto ``path_prefix`` (by its image folder name)."""
    anchor = osp.basename(osp.normpath(path_prefix))
    parts = impath.replace("\\", "/").split("/")
    if anchor in parts:
        index = len(parts) - 1 - parts[::-1].index(anchor)
        return osp.join(path_prefix, *parts[index + 1 :])
    raise ValueError(f"cannot map {impath} into {path_prefix}: no '{anchor}' folder in the path")


def read_upstream_fewshot_pkl(path: str, path_prefix: str) -> dict[str, list[Datum]]:
    """Read an upstream ``shot_K-seed_S.pkl`` (opt-in): Datum objects only, paths re-rooted onto this machine."""
    with open(path, "rb") as f:
        data = _UpstreamDatumUnpickler(f).load()
    out = {}
    for split, items in data.items():
        out[split] = [
            Datum(
                impath=_reroot(item.__dict__["_impath"], path_prefix),
                label=int(item.__dict__["_label"]),
                domain=int(item.__dict__.get("_domain", 0)),
                classname=item.__dict__["_classname"],
            )
            for item in items
        ]
    return out


def fewshot_split(
    dataset: DatasetBase,
    train: list[Datum],
    val: list[Datum] | None,
    num_shots: int,
    seed: int,
    fewshot_dir: str,
    path_prefix: str,
    read_upstream_pkl: bool = False,
) -> tuple[list[Datum], list[Datum] | None]:
    """``num_shots`` train images and ``min(num_shots, 4)`` val images per class, cached per (shots, seed).

    Sampling happens over all classes, before base/new subsampling, with python's global RNG (seeded by
    train.py), in the same order as upstream, so the same seed picks the same images. ``val=None`` (ImageNet)
    samples train only. An upstream ``.pkl`` cache is read only when ``read_upstream_pkl`` is set.
    """
    with contextlib.suppress(OSError):  # read-only dataset folder: sampling works, the cache write is skipped
        mkdir_if_missing(fewshot_dir)
    stem = f"shot_{num_shots}-seed_{seed}"
    cache = osp.join(fewshot_dir, f"{stem}.json")
    source = fewshot_source_digest(train, val, path_prefix)
    if osp.exists(cache):
        data = read_json(cache)
        if data.get("source_sha256") == source:
            print(f"Loading preprocessed few-shot data from {cache}")
            few_val = items_to_datums(data["val"], path_prefix) if "val" in data else None
            return items_to_datums(data["train"], path_prefix), few_val
        print(
            f"Note: the few-shot cache {cache} was drawn from other train/val lists than the current split "
            "(the split file changed, or the cache predates content keys); sampling anew"
        )

    upstream = osp.join(fewshot_dir, f"{stem}.pkl")
    if osp.exists(upstream):
        if read_upstream_pkl:
            print(f"Importing the upstream few-shot cache {upstream} (Datum objects only)")
            data = read_upstream_fewshot_pkl(upstream, path_prefix)
            train, val = data["train"], data.get("val") if val is not None else None
            _write_fewshot_cache(cache, train, val, path_prefix, source)
            return train, val
        print(
            f"Note: an upstream few-shot cache exists ({upstream}); pickles are not read unless "
            "DATASET.READ_UPSTREAM_PKL is True. Sampling anew (same seed and split file -> same picks)."
        )

    # the global RNG as upstream draws from it, then put back: a warm cache must leave the same random state
    with preserved_rng_state():
        train = dataset.generate_fewshot_dataset(train, num_shots=num_shots)
        if val is not None:
            val = dataset.generate_fewshot_dataset(val, num_shots=min(num_shots, 4))
    _write_fewshot_cache(cache, train, val, path_prefix, source)
    return train, val


def fewshot_source_digest(train: list[Datum], val: list[Datum] | None, path_prefix: str) -> str:
    """SHA256 of the lists a few-shot sample is drawn from (paths, labels, class names): the cache's content key."""
    lists = {"train": datums_to_items(train, path_prefix), "val": datums_to_items(val or [], path_prefix)}
    return hashlib.sha256(json.dumps(lists, sort_keys=True).encode("utf-8")).hexdigest()


def _write_fewshot_cache(
    cache: str, train: list[Datum], val: list[Datum] | None, path_prefix: str, source: str
) -> None:
    data: dict[str, Any] = {"train": datums_to_items(train, path_prefix), "source_sha256": source}
    if val is not None:
        data["val"] = datums_to_items(val, path_prefix)
    try:
        write_json(data, cache)
    except OSError as err:  # e.g. a shared read-only copy of the dataset: keep the in-memory sample
        print(f"Note: could not write the few-shot cache {cache} ({err}); the sample is used without caching")
        return
    print(f"Saving preprocessed few-shot data to {cache}")


class BenchmarkDataset(DatasetBase):
    """A dataset in the benchmark layout: ``<DATASET.ROOT>/<dataset_dir>/<image_dir_name>/...`` + a split json.

    Subclasses set the class attributes (and override ``read_data`` when they have no split json); the
    few-shot cache is applied here, the same way for every dataset.
    """

    dataset_dir = ""  # folder under DATASET.ROOT
    image_dir_name = ""  # folder holding the images, under dataset_dir
    split_file = ""  # benchmark split json under dataset_dir
    paths_relative_to_dataset_dir = False  # StanfordCars' split paths start at dataset_dir
    has_val = True  # ImageNet has no val split (its few-shot cache holds train only)
    # How upstream draws a split when the json is missing (generate_split keywords); None: it cannot
    split_generation: dict | None = None

    def __init__(self, cfg) -> None:
        root = osp.abspath(osp.expanduser(cfg.DATASET.ROOT))
        self.dataset_dir = osp.join(root, type(self).dataset_dir)
        self.image_dir = osp.join(self.dataset_dir, self.image_dir_name)
        self.split_path = osp.join(self.dataset_dir, self.split_file) if self.split_file else ""
        self.split_fewshot_dir = osp.join(self.dataset_dir, "split_fewshot")
        if not osp.isdir(self.dataset_dir):
            raise DatasetNotFoundError(
                f"{type(self).__name__} not found: expected the folder {self.dataset_dir} (DATASET.ROOT = {root}). "
                f"Check --root / $DATA. Fix: {self.fix_hint(root)}"
            )

        train, val, test = self.read_data()

        num_shots = cfg.DATASET.NUM_SHOTS
        if num_shots >= 1:
            train, few_val = fewshot_split(
                self,
                train,
                val if self.has_val else None,
                num_shots,
                cfg.SEED,
                self.split_fewshot_dir,
                self.path_prefix,
                read_upstream_pkl=cfg.DATASET.READ_UPSTREAM_PKL,
            )
            if self.has_val:
                val = few_val
        super().__init__(train_x=train, val=val, test=test)

    @property
    def path_prefix(self) -> str:
        return self.dataset_dir if self.paths_relative_to_dataset_dir else self.image_dir

    @classmethod
    def fix_hint(cls, root: str) -> str:
        """How to check / get this dataset's files under ``root`` (error messages); the demo overrides it."""
        return (
            f"`{prepare_command(cls.__name__, '--check', root)}` says what is wrong; "
            f"`{prepare_command(cls.__name__, '--download', root)}` fetches a fresh copy"
        )

    def read_data(self) -> tuple[list[Datum], list[Datum], list[Datum]]:
        """The full train / val / test lists (default: the split json)."""
        root = osp.dirname(self.dataset_dir)
        return read_split(self.split_path, self.path_prefix, type(self).__name__, fix=self.fix_hint(root))

