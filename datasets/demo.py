"""The built-in demo dataset: coloured shapes drawn deterministically, in a benchmark folder layout.

``make_demo_dataset(root)`` writes ``<root>/demo/images/<class_folder>/<index>.png`` and ``<root>/demo/split_demo.json``
(the benchmark split format). 12 classes, 16 train / 4 val / 8 test images each; the first 6 classes are the base
classes and the last 6 the novel ones, and the novel classes recombine the colours and shapes of the base ones.
The same call always writes byte-identical files, so tests and the demo are reproducible.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dassl.data.datasets import DATASET_REGISTRY
from dassl.evaluation.protocol import base_class_count

from .common import BenchmarkDataset

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 50, 180),
    "orange": (245, 140, 30),
}

# (colour, shape): base classes first, then novel ones.
DEMO_CLASSES: list[tuple[str, str]] = [
    ("red", "circle"),
    ("green", "square"),
    ("blue", "triangle"),
    ("yellow", "diamond"),
    ("purple", "cross"),
    ("orange", "ring"),
    ("blue", "circle"),
    ("red", "square"),
    ("green", "triangle"),
    ("purple", "diamond"),
    ("orange", "cross"),
    ("yellow", "ring"),
]

SPLIT_SIZES = {"train": 16, "val": 4, "test": 8}


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: tuple) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    elif shape == "cross":
        w = r / 3
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        inner = r * 0.55
        draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=(0, 0, 0, 0))
    else:
        raise ValueError(f"unknown shape {shape}")


def _render(rng: np.random.Generator, colour: str, shape: str, size: int) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(150, 256, size=3))
    noise = rng.integers(-12, 13, size=(size, size, 3))
    base = np.clip(np.array(background, dtype=np.int64)[None, None, :] + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(base, mode="RGB")
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    r = float(rng.uniform(0.22, 0.34) * size)
    cx = float(rng.uniform(r + 2, size - r - 2))
    cy = float(rng.uniform(r + 2, size - r - 2))
    jitter = rng.integers(-20, 21, size=3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[colour], jitter)) + (255,)
    _draw_shape(draw, shape, cx, cy, r, fill)
    img.paste(layer, (0, 0), layer)
    return img


def make_demo_dataset(root: str | os.PathLike, size: int = 64, seed: int = 0) -> Path:
    """Write the demo dataset under ``<root>/demo`` (overwriting it) and return ``<root>``."""
    root = Path(root)
    dataset_dir = root / "demo"
    image_dir = dataset_dir / "images"
    split: dict[str, list] = {name: [] for name in SPLIT_SIZES}
    for label, (colour, shape) in enumerate(DEMO_CLASSES):
        folder = f"{colour}_{shape}"
        (image_dir / folder).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, label])
        index = 0
        for part, count in SPLIT_SIZES.items():
            for _ in range(count):
                index += 1
                relpath = f"{folder}/{index:04d}.png"
                _render(rng, colour, shape, size).save(image_dir / relpath, format="PNG", optimize=False)
                split[part].append([relpath, label, f"{colour} {shape}"])
    (dataset_dir / "split_demo.json").write_text(json.dumps(split, indent=1) + "\n")
    return root


def num_base_classes() -> int:
    return base_class_count(len(DEMO_CLASSES))


@DATASET_REGISTRY.register()
class Demo(BenchmarkDataset):
    """The demo dataset (``make_demo_dataset``); supports every protocol the benchmark datasets support."""

    dataset_dir = "demo"
    image_dir_name = "images"
    split_file = "split_demo.json"

    @classmethod
    def fix_hint(cls, root: str) -> str:
        """The demo is not downloaded but generated: the command that writes it under ``root``."""
        return (
            "recreate it with "
            f"python -c \"from datasets.demo import make_demo_dataset; make_demo_dataset({str(root)!r})\" "
            "(python tools/demo.py --out DIR writes it to DIR/data)"
        )
