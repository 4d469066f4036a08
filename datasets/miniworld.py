"""MiniWorld: a generated world of named shapes in which pretrained miniature CLIPs and prompt learning can be
watched working end to end, with nothing downloaded.

Why it exists: random-weight CLIPs make every accuracy in the demo meaningless. Here a class is a phrase of
words (``"red striped star"``: colour x pattern x shape), so a CLIP text tower with the real BPE tokenizer can
learn what the words mean; images are drawn with variation in position, scale, rotation, clutter and noise.

Two domains of the same classes, as real CLIP's web data differs from a benchmark:

* ``pretrain``: light, nearly flat backgrounds and mild noise (what ``trainers.pretrain_clip`` trains on, over
  every class name of the world: ``ALL_CLASSNAMES``);
* ``downstream``: textured dark backgrounds, a colour cast, blur, stronger noise and more clutter (the
  benchmark the prompt learners see, ``make_miniworld_dataset``: a seeded subset of the classes).

Everything is a pure function of its seed: the same call writes byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from dassl.data.datasets import DATASET_REGISTRY
from dassl.utils.errors import UserError

from .common import BenchmarkDataset

__all__ = [
    "ALL_CLASSNAMES",
    "COLOURS",
    "DOMAINS",
    "MiniWorld",
    "MiniWorldConfig",
    "PATTERNS",
    "SHAPES",
    "CAPTION_TEMPLATES",
    "downstream_classnames",
    "make_miniworld_dataset",
    "render_image",
    "render_images",
]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "yellow": (235, 215, 40),
    "green": (40, 165, 60),
    "blue": (40, 80, 220),
}
PATTERNS = ("plain", "striped", "dotted")
SHAPES = ("circle", "square", "triangle", "star", "cross")
DOMAINS = ("pretrain", "downstream")

# Every class of the world: "<colour> <pattern> <shape>", in a fixed order (pretraining sees all of them).
ALL_CLASSNAMES: tuple[str, ...] = tuple(f"{c} {p} {s}" for s in SHAPES for c in COLOURS for p in PATTERNS)

# Captions of the pretraining pairs (real CLIP learns from alt-text, not from one template).
CAPTION_TEMPLATES = (
    "a photo of a {}.",
    "a {}.",
    "a picture of a {}.",
    "a drawing of a {}.",
    "a small {}.",
    "a large {}.",
    "an image of the {}.",
    "{}",
)

DATASET_DIR = "miniworld"
SPLIT_FILE = "split_miniworld.json"
CONFIG_FILE = "miniworld.json"  # the MiniWorldConfig that wrote the folder, to reuse it only when it matches


@dataclass(frozen=True)
class MiniWorldConfig:
    """Everything that determines the downstream dataset's files (its hash names the cache)."""

    seed: int = 0
    num_classes: int = 20  # first half base, second half novel
    train_per_class: int = 16
    val_per_class: int = 4
    test_per_class: int = 20
    image_size: int = 112

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def downstream_classnames(seed: int = 0, num_classes: int = 20) -> list[str]:
    """The downstream benchmark's classes: a seeded sample of ``ALL_CLASSNAMES`` (base first, then novel)."""
    if not 2 <= num_classes <= len(ALL_CLASSNAMES):
        raise UserError(f"MiniWorld num_classes must be in 2..{len(ALL_CLASSNAMES)}, got {num_classes}")
    rng = np.random.default_rng([seed, 17])
    picks = rng.choice(len(ALL_CLASSNAMES), size=num_classes, replace=False)
    return [ALL_CLASSNAMES[i] for i in picks]


# ----------------------------------------------------------------------------------------------------------
# drawing


def _shape_mask(shape: str, size: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """A boolean (size, size) mask of one shape, rotated by ``angle`` radians around its centre."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)

    def polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        cos, sin = math.cos(angle), math.sin(angle)
        return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in points]

    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "square":
        s = 0.85 * r
        draw.polygon(polygon([(-s, -s), (s, -s), (s, s), (-s, s)]), fill=255)
    elif shape == "triangle":
        draw.polygon(polygon([(0, -r), (0.87 * r, 0.5 * r), (-0.87 * r, 0.5 * r)]), fill=255)
    elif shape == "star":
        points = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.42 * r
            theta = -math.pi / 2 + k * math.pi / 5
            points.append((rad * math.cos(theta), rad * math.sin(theta)))
        draw.polygon(polygon(points), fill=255)
    elif shape == "cross":
        w = 0.32 * r
        draw.polygon(polygon([(-w, -r), (w, -r), (w, r), (-w, r)]), fill=255)
        draw.polygon(polygon([(-r, -w), (r, -w), (r, w), (-r, w)]), fill=255)
    else:
        raise ValueError(f"unknown MiniWorld shape {shape!r}; known: {', '.join(SHAPES)}")
    return np.asarray(mask) > 127


def _pattern_mask(pattern: str, size: int, r: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Where a pattern shows its second colour, as a boolean (size, size) array (all False for ``plain``)."""
    if pattern == "plain":
        return np.zeros((size, size), dtype=bool)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = max(5.0, r * float(rng.uniform(0.38, 0.5)))
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = xx * cos + yy * sin, -xx * sin + yy * cos
    phase_u, phase_v = rng.uniform(0, period, size=2)
    if pattern == "striped":
        return ((u + phase_u) % period) < period / 2
    if pattern == "dotted":
        du = ((u + phase_u) % period) - period / 2
        dv = ((v + phase_v) % period) - period / 2
        return du * du + dv * dv < (0.27 * period) ** 2
    raise ValueError(f"unknown MiniWorld pattern {pattern!r}; known: {', '.join(PATTERNS)}")


def _background(domain: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A float (size, size, 3) background in 0..255: near-flat light (pretrain) or dark textured (downstream)."""
    if domain == "pretrain":
        colour = rng.uniform(175, 250, size=3)
        ramp = np.linspace(-1, 1, size, dtype=np.float32)
        tilt = rng.uniform(-12, 12, size=2)
        grad = ramp[None, :, None] * tilt[0] + ramp[:, None, None] * tilt[1]
        return colour[None, None, :] + grad
    # downstream: a low-frequency texture (a blurred random field) over a mid-tone base colour
    colour = rng.uniform(110, 200, size=3)
    coarse = rng.normal(0, 1, size=(8, 8, 3)).astype(np.float32)
    field = np.asarray(
        Image.fromarray(((coarse - coarse.min()) / (np.ptp(coarse) + 1e-6) * 255).astype(np.uint8)).resize(
            (size, size), Image.BICUBIC
        ),
        dtype=np.float32,
    )
    return colour[None, None, :] + (field - 128) * 0.35


def render_image(classname: str, domain: str, rng: np.random.Generator, size: int = 112) -> np.ndarray:
    """One (size, size, 3) uint8 image of ``classname`` ("<colour> <pattern> <shape>") in a domain."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown MiniWorld domain {domain!r}; choose one of {', '.join(DOMAINS)}")
    colour_name, pattern, shape = classname.split(" ")
    downstream = domain == "downstream"
    img = _background(domain, size, rng)

    # clutter: small grey-ish blobs that are not part of the class
    for _ in range(int(rng.integers(1, 4) if downstream else rng.integers(0, 2))):
        kind = SHAPES[int(rng.integers(len(SHAPES)))]
        r = float(rng.uniform(0.06, 0.11) * size)
        cx, cy = rng.uniform(r, size - r, size=2)
        grey = float(rng.uniform(60, 200))
        img[_shape_mask(kind, size, cx, cy, r, float(rng.uniform(0, 2 * math.pi)))] = grey

    # the object
    r = float(rng.uniform(0.2, 0.33) * size)
    cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
    angle = float(rng.uniform(-math.pi / 6, math.pi / 6))
    main = np.asarray(COLOURS[colour_name], dtype=np.float32) + rng.uniform(-18, 18, size=3)
    second = np.full(3, 30.0) + rng.uniform(-10, 10, size=3)  # the pattern's colour
    body = _shape_mask(shape, size, float(cx), float(cy), r, angle)
    marks = _pattern_mask(pattern, size, r, float(rng.uniform(0, math.pi)), rng) & body
    img[body] = main
    img[marks] = second

    if downstream:
        img = img * rng.uniform(0.85, 1.1, size=3)[None, None, :]  # a colour cast (another camera / style)
        sigma = 12.0
    else:
        sigma = 5.0
    img = img + rng.normal(0, sigma, size=img.shape)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB")
    if downstream:
        out = out.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.4, 1.0))))
    return np.asarray(out)


def render_images(classnames: list[str] | tuple[str, ...], per_class: int, domain: str, seed: int,
                  size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` images of every class: (uint8 (n, size, size, 3), int64 labels (n,)), class by class."""
    images = np.empty((len(classnames) * per_class, size, size, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(len(classnames)), per_class)
    for label, name in enumerate(classnames):
        rng = np.random.default_rng([seed, DOMAINS.index(domain), ALL_CLASSNAMES.index(name)])
        for i in range(per_class):
            images[label * per_class + i] = render_image(name, domain, rng, size)
    return images, labels


# ----------------------------------------------------------------------------------------------------------
# the downstream benchmark on disk


def make_miniworld_dataset(root: str | os.PathLike, config: MiniWorldConfig | None = None) -> Path:
    """Write the downstream MiniWorld benchmark to ``<root>/miniworld`` (the benchmark layout) unless the same config
    already wrote it there; returns the dataset folder. Images: ``images/<class_folder>/<index>.png``."""
    config = config or MiniWorldConfig()
    dataset_dir = Path(root) / DATASET_DIR
    stamp = dataset_dir / CONFIG_FILE
    if stamp.is_file() and (dataset_dir / SPLIT_FILE).is_file():
        if json.loads(stamp.read_text()).get("digest") == config.digest():
            return dataset_dir
    classnames = downstream_classnames(config.seed, config.num_classes)
    sizes = {"train": config.train_per_class, "val": config.val_per_class, "test": config.test_per_class}
    per_class = sum(sizes.values())
    images, _ = render_images(classnames, per_class, "downstream", config.seed, config.image_size)
    split: dict[str, list] = {part: [] for part in sizes}
    for label, name in enumerate(classnames):
        folder = name.replace(" ", "_")
        (dataset_dir / "images" / folder).mkdir(parents=True, exist_ok=True)
        index = 0
        for part, count in sizes.items():
            for _ in range(count):
                relpath = f"{folder}/{index + 1:04d}.png"
                Image.fromarray(images[label * per_class + index]).save(dataset_dir / "images" / relpath)
                split[part].append([relpath, label, name])
                index += 1
    (dataset_dir / SPLIT_FILE).write_text(json.dumps(split, indent=1) + "\n")
    stamp.write_text(json.dumps({"digest": config.digest(), "config": asdict(config)}, indent=1) + "\n")
    return dataset_dir


@DATASET_REGISTRY.register()
class MiniWorld(BenchmarkDataset):
    """The downstream MiniWorld benchmark (``make_miniworld_dataset``); every protocol of the benchmarks."""

    dataset_dir = DATASET_DIR
    image_dir_name = "images"
    split_file = SPLIT_FILE

    def read_data(self):
        if not os.path.isfile(self.split_path):
            root = os.path.dirname(self.dataset_dir)
            raise UserError(
                f"MiniWorld not found: expected {self.split_path}. Write it with: python -c \"from "
                f"datasets.miniworld import make_miniworld_dataset; make_miniworld_dataset('{root}')\" "
                "(python tools/demo.py writes it too)"
            )
        return super().read_data()
