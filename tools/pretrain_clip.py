"""Pretrain the miniature CLIPs of the MiniWorld (a teacher-size and a student-size model), cached by content.

    python tools/pretrain_clip.py [--out DIR] [--kind teacher student] [--steps N]

Each model starts from ``tools.make_tiny_clip`` (OpenAI's layout), is trained contrastively
(``trainers.pretrain_clip``) on the MiniWorld *pretraining* domain with template captions over every class
name of the world, and is written in OpenAI's checkpoint format under OpenAI's file name
(``ViT-L-14.pt`` / ``ViT-B-16.pt``), so every trainer loads it with ``MODEL.BACKBONE.PATH``. A checkpoint lives in
``DIR/<hash>/`` where the hash covers everything that determines its weights (architecture, recipe, data seed,
the source of the code that draws the data and trains, the torch version): an unchanged recipe is read back,
a changed one is trained anew, a stale file is never used. Prints the zero-shot accuracy of each saved model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from promptkd.datasets import miniworld  # noqa: E402
from tools import make_tiny_clip as tiny  # noqa: E402
from trainers import pretrain_clip  # noqa: E402
from trainers.backbone import build_clip_from_state_dict, read_clip_state_dict  # noqa: E402

__all__ = ["MINIWORLD_CLIPS", "ClipRecipe", "pretrained_clip_path", "pretrain_miniworld_clips", "main"]

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 32  # a multiple of both patch sizes (8 and 16)
RECORD = "pretrain.json"


@dataclass(frozen=True)
class ClipRecipe:
    """Architecture + data + optimisation of one miniature CLIP: all that determines its weights."""

    kind: str  # a tools.make_tiny_clip kind: "teacher" (ViT-L/14-shaped) or "student" (ViT-B/16-shaped)
    vision_width: int
    vision_layers: int
    text_width: int
    text_layers: int
    patch: int
    images_per_class: int = 24  # pretraining images per class of the world (ALL_CLASSNAMES)
    world_seed: int = 0
    image_size: int = IMAGE_SIZE
    settings: pretrain_clip.PretrainSettings = field(default_factory=pretrain_clip.PretrainSettings)

    def digest(self) -> str:
        """Hash of the recipe, the code that turns it into weights, and the torch version."""
        sources = [REPO_ROOT / "datasets" / "miniworld.py", REPO_ROOT / "trainers" / "pretrain_clip.py",
                   Path(tiny.__file__), Path(__file__)]  # fmt: skip
        content = {
            "recipe": asdict(self),
            "code": [hashlib.sha256(p.read_bytes()).hexdigest() for p in sources],
            "torch": torch.__version__,
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


# The teacher is the larger model (wider and deeper towers, finer patches), as ViT-L/14 is to ViT-B/16.
MINIWORLD_CLIPS: dict[str, ClipRecipe] = {
    "teacher": ClipRecipe("teacher", vision_width=64, vision_layers=2, text_width=64, text_layers=2, patch=8,
                          settings=pretrain_clip.PretrainSettings(steps=500)),
    "student": ClipRecipe("student", vision_width=64, vision_layers=2, text_width=64, text_layers=1, patch=16,
                          settings=pretrain_clip.PretrainSettings(steps=400)),
}


def pretrained_clip_path(recipe: ClipRecipe, cache_dir: str | os.PathLike) -> Path:
    """Where the checkpoint of ``recipe`` lives (whether or not it was trained yet)."""
    return Path(cache_dir) / recipe.digest() / tiny.tiny_clip_filename(recipe.kind)


def _pretraining_data(recipe: ClipRecipe) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = miniworld.render_images(
        miniworld.ALL_CLASSNAMES, recipe.images_per_class, "pretrain", recipe.world_seed, recipe.image_size
    )
    return torch.from_numpy(images), torch.from_numpy(labels)


def _heldout_data(recipe: ClipRecipe, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two fresh images per class (another seed than the training images), for the printed zero-shot check."""
    images, labels = miniworld.render_images(
        miniworld.ALL_CLASSNAMES, 2, domain, recipe.world_seed + 1000, recipe.image_size
    )
    return torch.from_numpy(images), torch.from_numpy(labels)


def pretrain_miniworld_clips(
    cache_dir: str | os.PathLike, recipes: dict[str, ClipRecipe] | None = None, log=print
) -> dict[str, Path]:
    """The checkpoint of each recipe (default ``MINIWORLD_CLIPS``), trained now unless the cache holds it.

    Returns ``{kind: path}``; ``DIR/<hash>/pretrain.json`` records the recipe, the zero-shot accuracies and the
    training time. Training is deterministic: the same recipe on the same machine writes the same weights.
    """
    recipes = recipes or MINIWORLD_CLIPS
    paths: dict[str, Path] = {}
    data: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, recipe in recipes.items():
        path = pretrained_clip_path(recipe, cache_dir)
        paths[name] = path
        if path.is_file() and (path.parent / RECORD).is_file():
            record = json.loads((path.parent / RECORD).read_text())
            log(f"Pretrained {name} CLIP (cached): {path}  {_accuracy_line(record)}")
            continue
        key = (recipe.images_per_class, recipe.world_seed, recipe.image_size)
        if key not in data:
            data[key] = _pretraining_data(recipe)
        images, labels = data[key]
        log(f"Pretraining the {name} CLIP ({recipe.settings.steps} steps on {len(images)} images of "
            f"{len(miniworld.ALL_CLASSNAMES)} classes) -> {path}")  # fmt: skip
        start = time.time()
        init = tiny.make_tiny_clip(
            recipe.kind, image_size=recipe.image_size, layers=recipe.vision_layers, text_layers=recipe.text_layers,
            vision_width=recipe.vision_width, text_width=recipe.text_width, patch=recipe.patch,
            seed=recipe.settings.seed,
        )  # fmt: skip
        weights = pretrain_clip.contrastive_pretrain(
            init, images, labels, miniworld.ALL_CLASSNAMES, miniworld.CAPTION_TEMPLATES, recipe.settings, log=log
        )
        seconds = time.time() - start
        tmp = path.with_name(path.name + ".tmp")
        tiny.save_tiny_clip(weights, tmp)
        record = {"recipe": asdict(recipe), "seconds": round(seconds, 1), **_zero_shot(recipe, tmp)}
        (path.parent / RECORD).write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, path)
        log(f"Pretrained {name} CLIP in {seconds:.0f} s: {path}  {_accuracy_line(record)}")
    return paths


def _zero_shot(recipe: ClipRecipe, path: Path) -> dict[str, float]:
    """Zero-shot accuracy (%) of the *saved* checkpoint over all classes, in both domains."""
    model = build_clip_from_state_dict(read_clip_state_dict(path))
    out = {}
    for domain in miniworld.DOMAINS:
        images, labels = _heldout_data(recipe, domain)
        out[f"zero_shot_{domain}"] = round(
            pretrain_clip.zero_shot_accuracy(model, images, labels, miniworld.ALL_CLASSNAMES), 2
        )
    return out


def _accuracy_line(record: dict) -> str:
    n = len(miniworld.ALL_CLASSNAMES)
    return (f"zero-shot over {n} classes: {record['zero_shot_pretrain']:.1f}% (pretraining domain), "
            f"{record['zero_shot_downstream']:.1f}% (downstream domain)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "output" / "miniworld_clip", metavar="DIR",
                        help="cache dir of the checkpoints (default: output/miniworld_clip)")  # fmt: skip
    parser.add_argument("--kind", nargs="+", choices=sorted(MINIWORLD_CLIPS), default=list(MINIWORLD_CLIPS))
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=None, help="initialisation and sampling seed")
    args = parser.parse_args(argv)
    recipes = {}
    for kind in args.kind:
        recipe = MINIWORLD_CLIPS[kind]
        settings = recipe.settings
        if args.steps is not None:
            settings = replace(settings, steps=args.steps)
        if args.seed is not None:
            settings = replace(settings, seed=args.seed)
        recipes[kind] = replace(recipe, settings=settings)
    pretrain_miniworld_clips(args.out, recipes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
