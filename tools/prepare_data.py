"""Download the benchmark datasets from the authors' mirror and check their layout, split files and images.

    python tools/prepare_data.py --root $DATA caltech101          # check it; download it first if it is absent
    python tools/prepare_data.py --root $DATA --check all          # check every dataset, decode every image
    python tools/prepare_data.py --root $DATA --check --quick dtd  # existence of the files only (fast)
    python tools/prepare_data.py --root $DATA --check              # check the datasets found under the root
    python tools/prepare_data.py --root $DATA --download eurosat ucf101
    python tools/prepare_data.py --download caltech101 --url https://my.mirror/caltech-101.zip --sha256 HEX
    python tools/prepare_data.py --download imagenet_a --classnames /path/to/classnames.txt
    python tools/prepare_data.py --list                            # the catalog: folders, files, counts

DATASET is a config stem (caltech101, oxford_pets, ..., imagenet_r), a DATASET.NAME (Caltech101) or ``all``.
The root defaults to $DATA, else ./data. What each dataset should look like is in ``datasets/catalog.py``.

The mirror is the HuggingFace dataset repo zhengli97/prompt_learning_dataset (everything but ImageNet-1k).
The archive names there are a best guess (``<dataset folder>.zip``); if one is not found, look the name up at
https://huggingface.co/datasets/zhengli97/prompt_learning_dataset/tree/main and pass it with --url.
Downloads resume after an interruption and are checked against the SHA256 that HuggingFace publishes for the
file (the X-Linked-Etag header; --sha256 overrides). Extraction goes to <root>/.<folder>.extracting/, resumes
where it stopped, refuses members that would land outside it, and moves the folder into place only when complete.
The archive is deleted afterwards unless --keep-archive. Exit code 1 when anything is wrong.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

if __package__ in (None, ""):  # run as `python tools/prepare_data.py` from anywhere
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm  # noqa: E402

from dassl.evaluation.protocol import base_class_count  # noqa: E402
from dassl.utils.download import download_url, sha256_of_file, unreachable  # noqa: E402
from dassl.utils.errors import UserError, run_entry_point  # noqa: E402
from promptkd.datasets.catalog import CATALOG, MIRROR_REPO, DatasetInfo, find_dataset, mirror_url  # noqa: E402
from promptkd.datasets.common import split_problems  # noqa: E402

__all__ = [
    "DatasetReport",
    "ImageNetNotMirrored",
    "PrepareError",
    "Problem",
    "UnsafeArchiveError",
    "check_dataset",
    "download_dataset",
    "extract_archive",
    "inspect_dataset",
    "install_classnames",
    "main",
    "remote_sha256",
]

MIRROR_TREE_URL = f"https://huggingface.co/datasets/{MIRROR_REPO}/tree/main"
TOOL = "python tools/prepare_data.py"
MAX_LISTED = 5  # paths listed per problem before "... and N more"
_USER_AGENT = "promptkd-toolkit-prepare-data/1.0 (+urllib)"
_REDIRECT_CODES = (301, 302, 303, 307, 308)


class PrepareError(UserError, RuntimeError):
    """A failure the user can fix; the message says how."""


class ImageNetNotMirrored(PrepareError):
    """ImageNet-1k cannot be downloaded from the mirror (licence); the message holds the instructions."""


class UnsafeArchiveError(PrepareError):
    """An archive member would be written outside the extraction folder (absolute path or ``..``)."""


@dataclass(frozen=True)
class Problem:
    """One finding of a check: ``level`` is ``"error"`` (the dataset will not load) or ``"warning"``."""

    level: str
    message: str
    fix: str | None = None

    @property
    def is_error(self) -> bool:
        return self.level == "error"


@dataclass
class DatasetReport:
    """What a check found for one dataset: problems, and facts (counts) worth printing."""

    info: DatasetInfo
    dataset_dir: Path
    problems: list[Problem] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, message: str, fix: str | None = None) -> None:
        self.problems.append(Problem("error", message, fix))

    def warn(self, message: str, fix: str | None = None) -> None:
        self.problems.append(Problem("warning", message, fix))


# ----------------------------------------------------------------------------------------------------------
# small helpers


def default_root() -> Path:
    """``$DATA`` if set, else ``./data``."""
    return Path(os.environ.get("DATA") or "data")


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))


def _download_cmd(root: Path, info: DatasetInfo) -> str:
    if info.archive is None:
        return f"{TOOL} --root {_q(root)} --download {info.stem}   (prints how to get ImageNet-1k)"
    return f"{TOOL} --root {_q(root)} --download {info.stem}"


def _listing(paths: list[str]) -> str:
    shown = "\n".join(f"    {p}" for p in paths[:MAX_LISTED])
    more = f"\n    ... and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
    return shown + more


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _names_of(info: DatasetInfo) -> set[str]:
    return {_normalise(n) for n in (info.stem, info.name, info.dataset_dir, *info.aliases)}


def _visible_dirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _visible_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    except OSError:
        return []


def near_miss_folders(root: Path, info: DatasetInfo) -> list[Path]:
    """Folders in ``root`` that are probably ``info``'s dataset under another name (``Caltech101``, README typos)."""
    others = set().union(*(_names_of(o) for o in CATALOG.values() if o.stem != info.stem))
    wanted = _names_of(info)
    found = []
    for folder in _visible_dirs(root):
        if folder.name == info.dataset_dir:
            continue
        key = _normalise(folder.name)
        close = key not in others and difflib.get_close_matches(key, sorted(wanted), n=1, cutoff=0.9)
        if key in wanted or close:
            found.append(folder)
    return found


def _find_nested(dataset_dir: Path, name: str, depth: int = 2) -> Path | None:
    """``dataset_dir/<x>/name`` (or one level deeper): the content was extracted one folder too deep."""
    frontier = [dataset_dir]
    for _ in range(depth):
        frontier = [sub for folder in frontier for sub in _visible_dirs(folder)]
        for folder in frontier:
            if (folder / name).exists():
                return folder
    return None


def _missing_content_fix(root: Path, info: DatasetInfo, dataset_dir: Path, name: str) -> str:
    nested = _find_nested(dataset_dir, name)
    if nested is not None:
        return f"mv {_q(nested)}/* {_q(dataset_dir)}/ && rmdir {_q(nested)}   (extracted one folder too deep)"
    return _download_cmd(root, info)


# ----------------------------------------------------------------------------------------------------------
# check


def _verify_image(path: str) -> str | None:
    """``None`` if PIL can open and verify the file, else the reason."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as err:  # noqa: BLE001 (any decoder error means the file is unusable)
        return f"{type(err).__name__}: {err}"
    return None


def _check_images(
    report: DatasetReport,
    root: Path,
    paths: Iterable[str],
    *,
    verify_images: bool,
    progress: bool,
    workers: int,
) -> None:
    """Every listed image must exist (and, with ``verify_images``, decode)."""
    unique = list(dict.fromkeys(paths))
    missing: list[str] = []
    broken: list[str] = []
    desc = f"{report.info.stem}: {'verifying' if verify_images else 'finding'} images"
    with tqdm(total=len(unique), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        batch = 4096
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for start in range(0, len(unique), batch):
                chunk = unique[start : start + batch]
                present = []
                for path in chunk:
                    (present if os.path.isfile(path) else missing).append(path)
                if verify_images:
                    for path, reason in zip(present, pool.map(_verify_image, present)):
                        if reason is not None:
                            broken.append(f"{path}  ({reason})")
                bar.update(len(chunk))
    if missing:
        report.error(
            f"{len(missing)} of {len(unique)} images are missing:\n{_listing(missing)}",
            f"{_download_cmd(root, report.info)}   (fetches the dataset again and fills in the missing files)",
        )
    if broken:
        report.error(
            f"{len(broken)} images do not decode:\n{_listing(broken)}",
            f"{_download_cmd(root, report.info)}   (replaces them with fresh copies)",
        )
    ok = len(unique) - len(missing) - len(broken)
    how = "exist and decode" if verify_images else "exist (not decoded: --quick)"
    report.facts.append(f"{ok} of {len(unique)} images {how}")


def _compare(report: DatasetReport, counts: list[tuple[str, int, int | None]]) -> None:
    """One warning listing every ``(what, found, expected)`` count that differs from the catalog."""
    diffs = [
        f"{what} {found} (expected {expected})"
        for what, found, expected in counts
        if expected not in (None, found)
    ]
    if diffs:
        report.warn(
            f"counts differ from the catalog ({report.info.sizes_source}): {', '.join(diffs)}; "
            "fine if you use a subset on purpose"
        )


def _compare_split_counts(report: DatasetReport, labels: dict[str, list[int]]) -> None:
    """Class count and train / test-base / test-novel sizes against the catalog; adds the counts to the facts."""
    info = report.info
    classes = sorted({y for ys in labels.values() for y in ys})
    train_labels = sorted(set(labels["train"])) or classes
    base = set(train_labels[: base_class_count(len(train_labels))])
    test_base = sum(1 for y in labels["test"] if y in base)
    test_novel = len(labels["test"]) - test_base
    report.facts.append(
        f"{len(classes)} classes; train {len(labels['train'])}, val {len(labels['val'])}, "
        f"test {len(labels['test'])} (base {test_base} / novel {test_novel})"
    )
    _compare(
        report,
        [
            ("classes", len(classes), info.num_classes),
            ("train", len(labels["train"]), info.train_size),
            ("test base", test_base, info.test_base_size),
            ("test novel", test_novel, info.test_novel_size),
        ],
    )


def _check_split_json(report: DatasetReport, root: Path) -> list[str]:
    info, dataset_dir = report.info, report.dataset_dir
    assert info.split_file is not None
    split_path = dataset_dir / info.split_file
    if not split_path.is_file():
        report.error(
            f"split file missing: {split_path}",
            _missing_content_fix(root, info, dataset_dir, info.split_file),
        )
        return []
    try:
        split = json.loads(split_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        report.error(f"split file {split_path} is not valid json: {err}", _download_cmd(root, info))
        return []
    # the rules the dataset classes apply when they read it (and 'val', which few-shot runs need)
    problems = split_problems(split, required=("train", "val", "test"))
    for problem in problems:
        report.error(f"split file {split_path}: {problem}", _download_cmd(root, info))
    if not isinstance(split, dict) or not all(isinstance(split.get(k), list) for k in ("train", "val", "test")):
        return []

    prefix = dataset_dir / info.split_paths_root
    labels: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    paths: list[str] = []
    for part in ("train", "val", "test"):
        for entry in split[part]:
            if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str) and isinstance(entry[1], int):
                labels[part].append(entry[1])
                paths.append(str(prefix / entry[0]))
    _compare_split_counts(report, labels)
    return paths


def _check_fgvc(report: DatasetReport, root: Path) -> list[str]:
    info, dataset_dir = report.info, report.dataset_dir
    missing = [name for name in info.split_files if not (dataset_dir / name).is_file()]
    if missing:
        report.error(
            f"FGVCAircraft split files missing in {dataset_dir}: {', '.join(missing)}",
            _missing_content_fix(root, info, dataset_dir, missing[0]),
        )
        return []
    variants = [
        line.strip() for line in (dataset_dir / "variants.txt").read_text(encoding="utf-8").splitlines()
    ]
    variants = [v for v in variants if v]
    label_of = {name: i for i, name in enumerate(variants)}
    labels: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    bad: list[str] = []
    paths: list[str] = []
    for part in ("train", "val", "test"):
        filename = f"images_variant_{part}.txt"
        for number, line in enumerate((dataset_dir / filename).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            image_id, _, variant = line.strip().partition(" ")
            if variant not in label_of:
                bad.append(f"{filename}:{number}: {line.strip()!r} (variant not in variants.txt)")
                continue
            labels[part].append(label_of[variant])
            paths.append(str(dataset_dir / info.image_dir / f"{image_id}.jpg"))
    if bad:
        report.error(
            f"{len(bad)} unusable lines in the FGVCAircraft split files:\n{_listing(bad)}",
            _download_cmd(root, info),
        )
    _compare_split_counts(report, labels)
    return paths


def _read_classnames(path: Path) -> dict[str, str]:
    """``<wnid> <name words...>`` per line, as ``datasets.common.read_classnames`` reads it."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split(" ")
        if parts and parts[0]:
            out[parts[0]] = " ".join(parts[1:])
    return out


def _classnames_fix(root: Path, info: DatasetInfo, dataset_dir: Path) -> str:
    source = root / "imagenet" / "classnames.txt"
    target = dataset_dir / "classnames.txt"
    if info.stem != "imagenet" and source.is_file():
        return f"cp {_q(source)} {_q(target)}"
    return (
        f"{TOOL} --root {_q(root)} --classnames /path/to/classnames.txt {info.stem}   (classnames.txt is CoOp's "
        "ImageNet class-name file, linked from CoOp's DATASETS.md: one '<wnid> <class name>' line per class)"
    )


def _check_classnames(report: DatasetReport, root: Path) -> dict[str, str] | None:
    info, dataset_dir = report.info, report.dataset_dir
    path = dataset_dir / "classnames.txt"
    if not path.is_file():
        report.error(f"classnames.txt missing: {path}", _classnames_fix(root, info, dataset_dir))
        return None
    try:
        classnames = _read_classnames(path)
    except (OSError, UnicodeDecodeError) as err:
        report.error(f"cannot read {path}: {err}", _classnames_fix(root, info, dataset_dir))
        return None
    if len(classnames) != 1000:
        report.warn(f"{path} lists {len(classnames)} classes; ImageNet's has 1000")
    return classnames


def _class_folder_images(
    report: DatasetReport, root: Path, folder: Path, classnames: dict[str, str] | None, by_index: bool
) -> tuple[list[str], list[int]]:
    """Images under ``folder/<class>/`` and the number per class; flags folders classnames.txt can't name."""
    classes = _visible_dirs(folder)
    if classnames is not None:
        if by_index:
            unknown = [c.name for c in classes if not (c.name.isdigit() and int(c.name) < len(classnames))]
        else:
            unknown = [c.name for c in classes if c.name not in classnames]
        if unknown:
            report.error(
                f"{len(unknown)} class folders in {folder} have no entry in classnames.txt:\n{_listing(unknown)}",
                _classnames_fix(root, report.info, report.dataset_dir),
            )
    paths: list[str] = []
    counts: list[int] = []
    for cls in classes:
        files = [str(p) for p in _visible_files(cls)]
        paths += files
        counts.append(len(files))
    return paths, counts


def _check_imagenet(report: DatasetReport, root: Path) -> list[str]:
    info, dataset_dir = report.info, report.dataset_dir
    classnames = _check_classnames(report, root)
    image_root = dataset_dir / info.image_dir
    paths: list[str] = []
    split_counts: dict[str, list[int]] = {}
    for split in ("train", "val"):
        folder = image_root / split
        if not folder.is_dir():
            report.error(
                f"ImageNet folder missing: {folder} (wnid folders of the {split} images)",
                f"{TOOL} --root {_q(root)} --download imagenet   (prints the ImageNet-1k instructions and layout)",
            )
            continue
        images, counts = _class_folder_images(report, root, folder, classnames, by_index=False)
        paths += images
        split_counts[split] = counts
    if "train" in split_counts and "val" in split_counts:
        train, val = split_counts["train"], split_counts["val"]
        m = base_class_count(len(val))
        base, novel = sum(val[:m]), sum(val[m:])
        report.facts.append(
            f"{len(train)} train / {len(val)} val class folders; train {sum(train)}, "
            f"test (val) {sum(val)} (base {base} / novel {novel})"
        )
        _compare(
            report,
            [
                ("train classes", len(train), info.num_classes),
                ("val classes", len(val), info.num_classes),
                ("train", sum(train), info.train_size),
                ("test base", base, info.test_base_size),
                ("test novel", novel, info.test_novel_size),
            ],
        )
    return paths


def _check_class_folders(report: DatasetReport, root: Path) -> list[str]:
    info, dataset_dir = report.info, report.dataset_dir
    classnames = _check_classnames(report, root)
    folder = dataset_dir / info.image_dir
    if not folder.is_dir():
        report.error(
            f"image folder missing: {folder}", _missing_content_fix(root, info, dataset_dir, info.image_dir)
        )
        return []
    paths, counts = _class_folder_images(
        report, root, folder, classnames, by_index=info.class_folder_names == "index"
    )
    report.facts.append(f"{len(counts)} class folders; test {sum(counts)}")
    _compare(report, [("classes", len(counts), info.num_classes), ("test", sum(counts), info.test_size)])
    return paths


_CHECKERS: dict[str, Callable[[DatasetReport, Path], list[str]]] = {
    "split_json": _check_split_json,
    "fgvc_txt": _check_fgvc,
    "imagenet": _check_imagenet,
    "class_folders": _check_class_folders,
}


def inspect_dataset(
    root: str | Path,
    stem: str,
    verify_images: bool = True,
    *,
    progress: bool = False,
    workers: int = 8,
) -> DatasetReport:
    """Check one dataset's folder, split / class-name files, images and counts; see ``check_dataset``."""
    root = Path(root).expanduser().absolute()
    info = find_dataset(stem)
    dataset_dir = root / info.dataset_dir
    report = DatasetReport(info=info, dataset_dir=dataset_dir)
    if not dataset_dir.is_dir():
        near = near_miss_folders(root, info)
        if near:
            for folder in near:
                report.error(
                    f"{info.name} not found at {dataset_dir}, but {folder} looks like it",
                    f"rename {folder.name} to {info.dataset_dir}:  mv {_q(folder)} {_q(dataset_dir)}",
                )
        elif not root.is_dir():
            report.error(f"the data root {root} does not exist", _download_cmd(root, info))
        else:
            report.error(f"{info.name} not found: no folder {dataset_dir}", _download_cmd(root, info))
        return report
    if info.layout in ("split_json", "fgvc_txt") and not (dataset_dir / info.image_dir).is_dir():
        report.error(
            f"image folder missing: {dataset_dir / info.image_dir}",
            _missing_content_fix(root, info, dataset_dir, info.image_dir),
        )
        return report
    paths = _CHECKERS[info.layout](report, root)
    if paths:
        _check_images(report, root, paths, verify_images=verify_images, progress=progress, workers=workers)
    return report


def check_dataset(root: str | Path, stem: str, verify_images: bool = True) -> list[Problem]:
    """Problems of one dataset under ``root``: an error means the dataset will not load, a warning (counts that
    differ from the catalog) may be intended. ``verify_images=False`` only checks that the images exist."""
    return inspect_dataset(root, stem, verify_images).problems


def print_report(report: DatasetReport, out: IO[str] | None = None) -> None:
    """The short per-dataset report: facts, then each problem with its fix, then OK / FAILED."""
    out = out or sys.stdout
    print(f"== {report.info.stem} ({report.info.name}): {report.dataset_dir}", file=out)
    for fact in report.facts:
        print(f"   {fact}", file=out)
    for problem in report.problems:
        label = "ERROR" if problem.is_error else "warning"
        print(f"   {label}: {problem.message}", file=out)
        if problem.fix:
            print(f"      fix: {problem.fix}", file=out)
    warnings = len(report.problems) - len(report.errors)
    note = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
    if report.ok:
        print(f"   OK{note}", file=out)
    else:
        print(
            f"   FAILED: {len(report.errors)} error{'s' if len(report.errors) != 1 else ''}{note}", file=out
        )


# ----------------------------------------------------------------------------------------------------------
# download


def imagenet_instructions(root: Path) -> str:
    """How to get ImageNet-1k, which the mirror does not host."""
    dataset_dir = Path(root).expanduser().absolute() / "imagenet"
    return "\n".join(
        [
            "ImageNet-1k is not on the mirror and cannot be fetched by this tool: its licence allows download only",
            "from image-net.org, after you register and accept the terms of access (non-commercial research).",
            "  1. Register at https://image-net.org and download the ILSVRC2012 training and validation images",
            "     (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar) and the devkit with the val labels.",
            "  2. Arrange them like this (the flat val images sorted into wnid folders with the devkit labels):",
            f"       {dataset_dir}/images/train/<wnid>/*.JPEG   1000 folders, 1,281,167 images",
            f"       {dataset_dir}/images/val/<wnid>/*.JPEG     1000 folders, 50,000 images (used as the test split)",
            f"       {dataset_dir}/classnames.txt               CoOp's file: one '<wnid> <class name>' line per class",
            "     (classnames.txt is linked from CoOp's DATASETS.md; or install yours with",
            f"      {TOOL} --root {_q(root)} --classnames FILE imagenet)",
            f"  3. Check it: {TOOL} --root {_q(root)} --check imagenet",
        ]
    )


def _linked_sha256(headers) -> str | None:
    value = (headers.get("X-Linked-Etag") or "").strip() if headers is not None else ""
    value = value.removeprefix("W/").strip('"').lower()
    return value if re.fullmatch(r"[0-9a-f]{64}", value) else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        return None  # let the 3xx surface as an HTTPError so its headers can be read


def remote_sha256(url: str, timeout: float = 30.0, max_redirects: int = 10) -> str | None:
    """The SHA256 HuggingFace publishes for an LFS file (``X-Linked-Etag`` of a HEAD request), or ``None``.

    Redirects are followed by hand with HEAD (urllib would turn them into GETs); the header may sit on the
    redirect itself, as it does on huggingface.co. ``None`` means a server answered without a hash; no answer at
    all (offline, DNS, timeout) is a ``DownloadError``, so it is never reported as a missing hash.
    """
    opener = urllib.request.build_opener(_NoRedirect)
    for _ in range(max_redirects + 1):
        request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": _USER_AGENT})
        try:
            with opener.open(request, timeout=timeout) as response:
                return _linked_sha256(response.headers)
        except urllib.error.HTTPError as err:
            headers = err.headers
            err.close()
            sha = _linked_sha256(headers)
            if sha is not None:
                return sha
            location = headers.get("Location") if headers is not None else None
            if err.code in _REDIRECT_CODES and location:
                url = urllib.parse.urljoin(url, location)
                continue
            return None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise unreachable(url, err) from err
        except (OSError, ValueError):
            return None
    return None


def _member_path(name: str) -> PurePosixPath | None:
    """The safe relative path of an archive member; ``None`` for entries to skip. Raises on path traversal."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised):
        raise UnsafeArchiveError(
            f"archive member {name!r} has an absolute path; refusing to extract the archive"
        )
    parts = [p for p in normalised.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(
            f"archive member {name!r} points outside the target folder; refusing to extract"
        )
    if not parts or parts[0] == "__MACOSX":
        return None
    return PurePosixPath(*parts)


def _write_member(source: IO[bytes], dest: Path, bar: tqdm) -> None:
    """Copy to ``<dest>.partial`` then rename, so a file at ``dest`` is always complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    with open(partial, "wb") as out:
        while chunk := source.read(1 << 20):
            out.write(chunk)
            bar.update(len(chunk))
    os.replace(partial, dest)


def _already_extracted(dest: Path, size: int) -> bool:
    return dest.is_file() and dest.stat().st_size == size


def _zip_entries(archive: Path) -> Iterator[tuple[PurePosixPath, bool, int, Callable[[], IO[bytes]]]]:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            rel = _member_path(member.filename)
            if rel is not None:
                yield rel, member.is_dir(), member.file_size, lambda m=member: zf.open(m)


def _tar_entries(
    archive: Path, skipped: list[str]
) -> Iterator[tuple[PurePosixPath, bool, int, Callable[[], IO[bytes]]]]:
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            rel = _member_path(member.name)
            if rel is None:
                continue
            if not (member.isfile() or member.isdir()):
                skipped.append(member.name)  # links, devices, fifos: never needed by a dataset
                continue
            yield rel, member.isdir(), member.size, lambda m=member: tf.extractfile(m)


def extract_archive(archive: str | Path, staging: str | Path, *, progress: bool = True) -> tuple[int, int]:
    """Extract a zip or tar(.gz/.bz2/.xz) into ``staging``, resumably: members already there with the right size
    are skipped. Refuses absolute paths and ``..`` members (``UnsafeArchiveError``: a zip is refused before
    anything is written; a tar is checked while streaming and ``staging`` is removed). Returns ``(written, skipped_as_already_extracted)``."""
    archive, staging = Path(archive), Path(staging)
    skipped_links: list[str] = []
    is_zip = zipfile.is_zipfile(archive)
    if is_zip:
        # the central directory is cheap to read: validate every member before writing anything
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
        for member in members:
            _member_path(member.filename)
        entries = _zip_entries(archive)
        total: int | None = sum(m.file_size for m in members)
    elif tarfile.is_tarfile(archive):
        entries = _tar_entries(archive, skipped_links)
        total = None
    else:
        raise PrepareError(f"{archive} is neither a zip nor a tar archive; delete it and download again")

    staging.mkdir(parents=True, exist_ok=True)
    written = resumed = 0
    try:
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"extracting {archive.name}",
            disable=not progress,
        ) as bar:
            for rel, is_dir, size, opener in entries:
                dest = staging.joinpath(*rel.parts)
                if is_dir:
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                if _already_extracted(dest, size):
                    resumed += 1
                    bar.update(size)
                    continue
                with opener() as source:
                    _write_member(source, dest, bar)
                written += 1
    except UnsafeArchiveError:
        # a tar is validated while streaming: drop what was written
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if skipped_links:
        print(
            f"note: skipped {len(skipped_links)} links/special files in {archive.name}: {skipped_links[:3]}"
        )
    return written, resumed


def _looks_like(folder: Path, info: DatasetInfo) -> bool:
    return (folder / info.image_dir).exists() or any((folder / name).is_file() for name in info.split_files)


def _locate_content(staging: Path, info: DatasetInfo) -> Path:
    """The folder inside ``staging`` that holds the dataset (archives differ in how deep they put it)."""
    if (staging / info.dataset_dir).is_dir():
        return staging / info.dataset_dir
    wanted = _names_of(info)
    tops = _visible_dirs(staging)
    for folder in tops:
        if _normalise(folder.name) in wanted:
            return folder
    if _looks_like(staging, info):
        return staging
    if len(tops) == 1 and _looks_like(tops[0], info):
        return tops[0]
    raise PrepareError(
        f"the archive does not contain {info.dataset_dir}/ (nor {info.image_dir}/ or {info.split_files[0]}); "
        f"what it holds is in {staging}. Is --url the right archive?"
    )


def _merge_into(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``; where ``target`` exists, move the contents in (fresh files win)."""
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        return
    if not target.is_dir():
        raise PrepareError(f"{target} exists and is not a folder; move it away and run again")
    for child in list(source.iterdir()):
        dest = target / child.name
        if child.is_dir() and dest.is_dir():
            _merge_into(child, dest)
        else:
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(child, dest)
    shutil.rmtree(source, ignore_errors=True)


def install_classnames(root: str | Path, stem: str, classnames: str | Path | None = None) -> Path | None:
    """Give ImageNet / a variant its ``classnames.txt`` when it lacks one: ``classnames`` if given, else a copy
    of ``<root>/imagenet/classnames.txt``. Returns the installed file (or the one already there), else ``None``."""
    root = Path(root).expanduser().absolute()
    info = find_dataset(stem)
    if info.classnames_file is None:
        return None
    target = root / info.dataset_dir / info.classnames_file
    if target.is_file():
        return target
    source = Path(classnames).expanduser() if classnames else root / "imagenet" / "classnames.txt"
    if classnames and not source.is_file():
        raise PrepareError(f"--classnames {source}: no such file")
    if not source.is_file() or source.resolve() == target.resolve():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    print(f"{info.stem}: wrote {target} (copied from {source})")
    return target


def download_dataset(
    root: str | Path,
    stem: str,
    *,
    url: str | None = None,
    sha256: str | None = None,
    keep_archive: bool = False,
    classnames: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Download a dataset's archive (resumable, SHA256-checked), extract it into ``<root>/<dataset_dir>`` and
    return that folder. ``url`` replaces the mirror URL, ``sha256`` the hash from the ``X-Linked-Etag`` header.
    ImageNet-1k raises ``ImageNetNotMirrored`` with the manual instructions."""
    root = Path(root).expanduser().absolute()
    info = find_dataset(stem)
    if info.archive is None:
        raise ImageNetNotMirrored(imagenet_instructions(root))
    url = url or mirror_url(info)
    assert url is not None
    archive_name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name or info.archive
    archive = root / archive_name
    root.mkdir(parents=True, exist_ok=True)

    if sha256:
        expected: str | None = sha256.strip().lower()
        print(f"{info.stem}: expected SHA256 (--sha256) {expected}")
    else:
        expected = remote_sha256(url)
        if expected:
            print(f"{info.stem}: expected SHA256 (X-Linked-Etag) {expected}")
        else:
            print(
                f"{info.stem}: the server publishes no SHA256 for {url}; only the transfer length is checked"
            )

    if archive.is_file() and (expected is None or sha256_of_file(archive) == expected):
        print(f"{info.stem}: reusing {archive}")
    else:
        if archive.is_file():
            print(f"{info.stem}: {archive} does not match the expected SHA256; downloading it again")
            archive.unlink()
        print(f"{info.stem}: downloading {url}")
        try:
            download_url(url, archive, expected, progress=progress)
        except urllib.error.HTTPError as err:
            hint = ""
            if err.code == 404 and "huggingface.co" in url:
                hint = (
                    f" The archive names on the mirror are a guess: look up the file at {MIRROR_TREE_URL} "
                    f"and run: {TOOL} --root {_q(root)} --download {info.stem} --url <its resolve/main URL>"
                )
            raise PrepareError(f"download of {url} failed: HTTP {err.code} {err.reason}.{hint}") from err

    staging = root / f".{info.dataset_dir}.extracting"
    resuming = staging.is_dir()
    written, resumed = extract_archive(archive, staging, progress=progress)
    if resuming:
        print(
            f"{info.stem}: resumed extraction: {resumed} files were already extracted, {written} written now"
        )
    content = _locate_content(staging, info)
    target = root / info.dataset_dir
    _merge_into(content, target)
    shutil.rmtree(staging, ignore_errors=True)
    print(f"{info.stem}: extracted into {target}")
    if not keep_archive:
        archive.unlink(missing_ok=True)

    if info.classnames_file is not None and install_classnames(root, info.stem, classnames) is None:
        print(
            f"{info.stem}: {target / 'classnames.txt'} is missing: put ImageNet's classnames.txt in "
            f"{root / 'imagenet'} or pass --classnames FILE (CoOp's file, linked from CoOp's DATASETS.md)"
        )
    return target


# ----------------------------------------------------------------------------------------------------------
# CLI


def _print_catalog() -> None:
    print(
        f"{'stem':<16}{'DATASET.NAME':<21}{'folder / images':<58}{'classes':>8}  train / test-base / test-novel"
    )
    for info in CATALOG.values():
        where = f"{info.dataset_dir}/{info.image_dir}"
        sizes = " / ".join(
            "?" if n is None else str(n) for n in (info.train_size, info.test_base_size, info.test_novel_size)
        )
        if info.test_only:
            sizes = f"test only: {info.test_size}"
        print(f"{info.stem:<16}{info.name:<21}{where:<58}{info.num_classes:>8}  {sizes}")
        print(
            f"{'':<37}files: {', '.join(info.split_files)}; mirror: {info.archive or 'not mirrored (licence)'}"
        )


def _resolve_names(parser: argparse.ArgumentParser, names: list[str]) -> list[str]:
    stems: list[str] = []
    for name in names:
        if name.lower() == "all":
            stems += list(CATALOG)
            continue
        try:
            stems.append(find_dataset(name).stem)
        except KeyError as err:
            parser.error(str(err.args[0]))
    return list(dict.fromkeys(stems))


def _present(root: Path) -> list[str]:
    """Datasets with a folder (or a near-miss folder) under ``root``."""
    return [
        s
        for s, info in CATALOG.items()
        if (root / info.dataset_dir).is_dir() or near_miss_folders(root, info)
    ]


def make_split(root: str | Path, stem: str, seed: int, overwrite: bool = False) -> Path:
    """Write ``<dataset dir>/<split json>`` as a seeded random split of the class folders (the split the original
    code draws when the json is missing; ``datasets.common.generate_split``); returns the file written."""
    from dassl.data.datasets import DATASET_REGISTRY
    from promptkd import datasets  # noqa: F401  (registers the dataset classes)
    from promptkd.datasets.common import generate_split, save_split

    info = CATALOG[stem]
    dataset_class = DATASET_REGISTRY.get(info.name)
    generation = getattr(dataset_class, "split_generation", None)
    if generation is None:
        able = sorted(s for s, i in CATALOG.items() if getattr(DATASET_REGISTRY.get(i.name), "split_generation", None) is not None)
        raise PrepareError(
            f"{stem}: the original code has no random split for this dataset (its images are not one folder per "
            f"class); download the authors' split file: {TOOL} --download {stem}. --make-split works for: {', '.join(able)}"
        )
    dataset_dir = Path(root) / dataset_class.dataset_dir
    image_dir = dataset_dir / dataset_class.image_dir_name
    split_path = dataset_dir / dataset_class.split_file
    if not image_dir.is_dir():
        raise PrepareError(f"{stem}: no image folder {image_dir}; download the dataset first: {TOOL} --download {stem}")
    if split_path.exists() and not overwrite:
        raise PrepareError(f"{split_path} exists; it is kept (pass --overwrite-split to replace it with a random split)")
    train, val, test = generate_split(str(image_dir), seed, **generation)
    save_split(train, val, test, str(split_path), str(image_dir))
    print(f"{stem}: random split (seed {seed}) of {len(train)} / {len(val)} / {len(test)} train / val / test images "
          "written; it is not the benchmark's split, so numbers on it are not comparable with published ones")  # fmt: skip
    return split_path


def main(argv: list[str] | None = None) -> int:
    """The CLI: problems per dataset are printed with their fix (exit 1); an error outside them is one ``Error:``
    message (exit 2, ``PROMPTKD_DEBUG=1`` for the traceback)."""
    return run_entry_point(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "datasets",
        nargs="*",
        metavar="DATASET",
        help=f"'all' or any of: {', '.join(CATALOG)} (or DATASET.NAME)",
    )
    parser.add_argument("--root", type=Path, default=None, help="data root (default: $DATA, else ./data)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only check (without DATASET: those under --root)")
    mode.add_argument("--download", action="store_true", help="download, extract, then check")
    mode.add_argument("--list", action="store_true", help="print the catalog of datasets and exit")
    mode.add_argument("--make-split", action="store_true",
                      help="write a seeded random split json for folder-per-class datasets (as the original code "
                      "draws one when the file is missing), then check")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="--make-split: the seed of the random split (default 1)")
    parser.add_argument("--overwrite-split", action="store_true", help="--make-split: replace an existing split file")
    parser.add_argument("--quick", action="store_true", help="check that images exist, do not decode them")
    parser.add_argument(
        "--url",
        default=None,
        help="download from this URL instead of the mirror's best-guess archive name; one DATASET only",
    )
    parser.add_argument(
        "--sha256", default=None, help="expected SHA256 of the archive (overrides the server's)"
    )
    parser.add_argument("--keep-archive", action="store_true", help="keep the archive after extracting it")
    parser.add_argument(
        "--classnames",
        type=Path,
        default=None,
        help="ImageNet's classnames.txt, installed into ImageNet / variant folders that lack one "
        "(default: copied from <root>/imagenet/classnames.txt)",
    )
    parser.add_argument("--workers", type=int, default=8, help="threads that decode images (default 8)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    if args.list:
        _print_catalog()
        return 0
    root = (args.root or default_root()).expanduser().absolute()
    stems = _resolve_names(parser, args.datasets)
    if not stems:
        if not args.check:
            parser.error("give at least one DATASET (or 'all')")
        stems = _present(root)
        if not stems:
            print(f"no dataset folders found under {root}; known datasets: {', '.join(CATALOG)}")
            print(f"download one with: {TOOL} --root {_q(root)} --download <dataset>")
            return 1
    if (args.url or args.sha256) and len(stems) != 1:
        parser.error("--url and --sha256 apply to exactly one DATASET")
    progress = not args.no_progress

    failed: list[str] = []
    to_check: list[str] = []
    for stem in stems:
        info = CATALOG[stem]
        if args.make_split:
            try:
                make_split(root, stem, args.seed, overwrite=args.overwrite_split)
            except (PrepareError, ValueError, OSError) as err:
                print(f"{stem}: ERROR: {err}")
                failed.append(stem)
                continue
            to_check.append(stem)
            continue
        absent = not (root / info.dataset_dir).is_dir() and not near_miss_folders(root, info)
        if args.download or (not args.check and absent and info.archive is not None):
            try:
                download_dataset(
                    root,
                    stem,
                    url=args.url,
                    sha256=args.sha256,
                    keep_archive=args.keep_archive,
                    classnames=args.classnames,
                    progress=progress,
                )
            except ImageNetNotMirrored as err:
                print(err)
                failed.append(stem)
                continue
            except (PrepareError, ValueError, OSError) as err:
                print(f"{stem}: ERROR: {err}")
                failed.append(stem)
                continue
        elif not args.check and info.classnames_file is not None:
            try:
                install_classnames(root, stem, args.classnames)
            except PrepareError as err:
                print(f"{stem}: ERROR: {err}")
        to_check.append(stem)

    reports = []
    for stem in to_check:
        report = inspect_dataset(
            root, stem, verify_images=not args.quick, progress=progress, workers=args.workers
        )
        print_report(report)
        reports.append(report)
        if not report.ok:
            failed.append(stem)

    ok = [r.info.stem for r in reports if r.ok]
    if len(stems) > 1 or failed:
        print(
            f"\n{len(ok)} of {len(stems)} datasets OK"
            + (f"; problems: {', '.join(failed)}" if failed else "")
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
