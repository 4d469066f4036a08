"""Small file, json, seeding and environment helpers with Dassl's names."""

from __future__ import annotations

import difflib
import errno
import json
import os
import os.path as osp
import random
import shutil
import sys
import tempfile
import time
from typing import Any

import numpy as np
import PIL
import torch
from PIL import Image

from .errors import UserError

__all__ = [
    "UnknownNameError",
    "FileWriteError",
    "default_file_mode",
    "temp_file_beside",
    "mkdir_if_missing",
    "check_isfile",
    "read_json",
    "write_json",
    "atomic_write_text",
    "set_random_seed",
    "read_image",
    "collect_env_info",
    "listdir_nohidden",
    "get_most_similar_str_to_a_from_b",
    "check_availability",
    "tolist_if_not",
]


def mkdir_if_missing(dirname: str) -> None:
    """Create dirname if it is missing (no error if another process creates it first)."""
    if not osp.exists(dirname):
        try:
            os.makedirs(dirname)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise


def check_isfile(fpath: str) -> bool:
    """True if ``fpath`` is a file; warns (as Dassl does) when it is not."""
    isfile = osp.isfile(fpath)
    if not isfile:
        print(f'No file found at "{fpath}"')
    return isfile


def read_json(fpath: str) -> Any:
    with open(fpath, encoding="utf-8") as f:
        return json.load(f)


class FileWriteError(UserError, OSError):
    """A file the toolkit writes could not be written (full disk, no permission, read-only folder)."""


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666 & ~umask`` (``mkstemp`` would give 0600, unreadable to others)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0)  # no /proc: read it the classic way (set and restore)
    os.umask(umask)
    return 0o666 & ~umask


def temp_file_beside(fpath: str) -> tuple[int, str]:
    """An open temp file (fd, path) in ``fpath``'s folder, with the usual permissions, for an atomic replace."""
    dirname = osp.dirname(osp.abspath(fpath))
    try:
        mkdir_if_missing(dirname)
        fd, tmp = tempfile.mkstemp(dir=dirname, prefix=f".{osp.basename(fpath)}.", suffix=".tmp")
    except OSError as err:
        raise write_failed(fpath, err) from err
    os.fchmod(fd, default_file_mode())
    return fd, tmp


def write_failed(fpath: str, err: BaseException) -> FileWriteError:
    """The error for a failed write of ``fpath``: what failed, the free space left there, and the fix."""
    dirname = osp.dirname(osp.abspath(fpath))
    try:
        free = f"{shutil.disk_usage(dirname).free / 2**20:.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
    return FileWriteError(
        f"Could not write {fpath} ({reason}; {free}). A full disk or a folder without write permission is the usual "
        "cause. Fix: free space (or choose a folder with room, e.g. another --output-dir) and rerun the same "
        "command; the previous version of the file, if any, is unchanged."
    )


def atomic_write_text(fpath: str, text: str) -> None:
    """Write a text file via a temp file + rename, so a crash never leaves half a file."""
    fd, tmp = temp_file_beside(fpath)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, fpath)
    except BaseException as err:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, FileWriteError):
            raise write_failed(fpath, err) from err
        raise


def write_json(obj: Any, fpath: str) -> None:
    """Write ``obj`` as indented json, atomically."""
    atomic_write_text(fpath, json.dumps(obj, indent=4, separators=(",", ": ")) + "\n")


def set_random_seed(seed: int) -> None:
    """Seed python's ``random``, numpy and torch (all devices), as Dassl does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def read_image(path: str) -> Image.Image:
    """Read an image as RGB with PIL; a missing or corrupt file raises an error that names it."""
    if not osp.exists(path):
        raise FileNotFoundError(f"Image not found: {path}")
    try:
        return Image.open(path).convert("RGB")
    except OSError as err:
        # A truncated or non-image file: fail with the path instead of retrying forever (Dassl retries).
        raise OSError(f"Cannot read image {path}: {err}. Re-download or remove this file.") from err


def collect_env_info() -> str:
    """A human-readable summary of the software and hardware, printed at the top of every log."""
    lines = [
        f"Python: {sys.version.split()[0]} ({sys.platform})",
        f"PyTorch: {torch.__version__} (debug={torch.version.debug})",
        f"CUDA used to build PyTorch: {torch.version.cuda}",
        f"CUDA available: {torch.cuda.is_available()}",
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            lines.append(f"GPU {i}: {torch.cuda.get_device_name(i)}")
    lines.append(f"CPU threads: {torch.get_num_threads()}")
    try:
        import torchvision

        lines.append(f"torchvision: {torchvision.__version__}")
    except ImportError:  # pragma: no cover
        pass
    try:
        import open_clip

        lines.append(f"open_clip: {open_clip.__version__}")
    except ImportError:  # pragma: no cover
        pass
    lines.append(f"numpy: {np.__version__}")
    lines.append(f"Pillow ({PIL.__version__})")
    lines.append(f"Date: {time.strftime('%Y-%m-%d %H:%M:%S')}")
    return "\n".join(lines)


def listdir_nohidden(path: str, sort: bool = False) -> list[str]:
    """List a directory without hidden entries (``.DS_Store`` and friends)."""
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    if sort:
        items.sort()
    return items


def get_most_similar_str_to_a_from_b(a: str, b: list[str]) -> str:
    """The string in ``b`` most similar to ``a`` (for 'did you mean' hints)."""
    best, best_score = b[0] if b else "", -1.0
    for candidate in b:
        score = difflib.SequenceMatcher(None, a, candidate).ratio()
        if score > best_score:
            best, best_score = candidate, score
    return best


class UnknownNameError(UserError, ValueError):
    """A registry name (trainer, dataset, ...) that nothing is registered under."""


def check_availability(requested: str, available: list[str], what: str = "name", key: str = "") -> None:
    """Raise ``UnknownNameError`` with a suggestion when ``requested`` is not among ``available``.

    ``what`` names the kind of thing (``"trainer"``), ``key`` the config key / flag that sets it.
    """
    if requested not in available:
        suggestion = get_most_similar_str_to_a_from_b(requested, available)
        where = f" ({key})" if key else ""
        raise UnknownNameError(
            f"Unknown {what} '{requested}'{where}; registered: {', '.join(sorted(available))}. "
            f"Did you mean '{suggestion}'? Names are case-sensitive."
        )


def tolist_if_not(x: Any) -> list:
    """Wrap a single value in a list."""
    if not isinstance(x, list):
        x = [x]
    return x
