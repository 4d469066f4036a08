"""Shared fixtures: where the golden fixtures live, and a fresh registry state per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Tests that train run on the CPU; `PROMPTKD_TEST_DEVICE=cuda` runs them on a GPU instead (device checks).
TEST_DEVICE = os.environ.get("PROMPTKD_TEST_DEVICE", "cpu")
USE_CUDA_OPT = "True" if TEST_DEVICE == "cuda" else "False"


def _golden_root() -> Path:
    env = os.environ.get("PROMPTKD_GOLDEN")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The golden fixtures made by the original code (``../shared/golden`` or ``$PROMPTKD_GOLDEN``).

    In CI (``CI`` set) a missing folder is a failure, not a skip, so parity can never silently stop being tested.
    """
    root = _golden_root()
    if not (root / "README.md").is_file():
        message = f"golden fixtures not found at {root} (set PROMPTKD_GOLDEN)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def make_tiny_caltech(
    root: Path,
    classes: tuple[str, ...] = ("Faces", "Leopards", "airplanes", "anchor"),
    n_train: int = 4,
    n_val: int = 2,
    n_test: int = 3,
    size: int = 40,
) -> Path:
    """Write a Caltech101-layout dataset (``<root>/caltech-101``) with coloured images and a CoOp split json.

    Each class has its own colour, so even a tiny random CLIP sees class-dependent inputs.
    """
    import json

    from PIL import Image

    names = {"Faces": "face", "Leopards": "leopard", "airplanes": "airplane", "Motorbikes": "motorbike"}
    dataset_dir = root / "caltech-101"
    image_dir = dataset_dir / "101_ObjectCategories"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, folder in enumerate(classes):
        (image_dir / folder).mkdir(parents=True, exist_ok=True)
        colour = ((53 * label) % 256, (97 * label + 80) % 256, (151 * label + 30) % 256)
        index = 0
        for part, count in (("train", n_train), ("val", n_val), ("test", n_test)):
            for _ in range(count):
                index += 1
                relpath = f"{folder}/image_{index:04d}.jpg"
                img = Image.new("RGB", (size + 3 * index, size), colour)
                img.putpixel((index % size, index % size), (255, 255, 255))
                img.save(image_dir / relpath, quality=95)
                split[part].append([relpath, label, names.get(folder, folder)])
    (dataset_dir / "split_zhou_Caltech101.json").write_text(json.dumps(split))
    return root
