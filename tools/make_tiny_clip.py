"""Write tiny random-weight CLIP checkpoints in OpenAI's format, for tests and the demo.

Same key names and tensor layouts as OpenAI's released files and every tensor float16 (like the tiny CLIPs of
the golden fixtures, docs/design.md#golden-fixtures), so they load through exactly the code path real weights take
(``trainers.backbone``). Two shapes, named after the models they stand in for:

  teacher  "ViT-L/14"-like: patch 14, embed dim 768, vision width 64, text width 64, 10 + 10 layers
  student  "ViT-B/16"-like: patch 16, embed dim 512, vision width 128 (2 heads), text width 64, 10 + 2 layers
  rn50     "RN50"-like: OpenAI's ModifiedResNet (stem, 4 bottleneck stages, attention pooling), width 8, one block
           per stage, embed dim 64, text width 64, 2 text layers; for the text-prompt methods on a ResNet

Context length 77 and vocabulary 49408, so the real CLIP BPE tokenizer works with them. Weights follow the
``CLIP.initialize_parameters`` recipe with a seeded ``torch.Generator``; ``logit_scale`` = ln(100).
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["TINY_CLIP_SPECS", "make_tiny_clip", "save_tiny_clip", "tiny_clip_filename", "main"]

CheckpointFormat = Literal["state_dict", "torchscript"]

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408

# Architecture of each kind; `name` is the OpenAI backbone the tiny model stands in for.
TINY_CLIP_SPECS: dict[str, dict] = {
    "teacher": {
        "name": "ViT-L/14",
        "file": "ViT-L-14.pt",
        "patch": 14,
        "embed_dim": 768,
        "vision_width": 64,
        "text_width": 64,
        "vision_layers": 10,
        "text_layers": 10,
    },
    "student": {
        "name": "ViT-B/16",
        "file": "ViT-B-16.pt",
        "patch": 16,
        "embed_dim": 512,
        "vision_width": 128,
        "text_width": 64,
        "vision_layers": 10,
        "text_layers": 2,
    },
    "rn50": {
        "name": "RN50",
        "file": "RN50.pt",
        "patch": 32,  # the ResNet's total stride: image_size must be a multiple of it
        "embed_dim": 64,
        "vision_width": 8,
        "text_width": 64,
        "vision_layers": 1,  # bottleneck blocks per stage
        "text_layers": 2,
        "resnet": True,
    },
}

TORCHSCRIPT_SUBDIR = "torchscript"


def tiny_clip_filename(kind: str) -> str:
    """OpenAI's file name for the model a kind stands in for (``teacher`` -> ``ViT-L-14.pt``)."""
    return _spec(kind)["file"]


def _spec(kind: str) -> dict:
    if kind not in TINY_CLIP_SPECS:
        raise ValueError(f"unknown tiny CLIP kind {kind!r}; choose one of {', '.join(TINY_CLIP_SPECS)}")
    return TINY_CLIP_SPECS[kind]


def _resblocks(prefix: str, width: int, layers: int, normal, zeros, ones) -> dict[str, Tensor]:
    """OpenAI's ResidualAttentionBlock tensors, block by block, with ``CLIP.initialize_parameters`` stds."""
    attn_std = width**-0.5
    proj_std = width**-0.5 * (2 * layers) ** -0.5
    fc_std = (2 * width) ** -0.5
    out: dict[str, Tensor] = {}
    for i in range(layers):
        block = f"{prefix}.resblocks.{i}"
        out[f"{block}.attn.in_proj_weight"] = normal((3 * width, width), attn_std)
        out[f"{block}.attn.in_proj_bias"] = zeros(3 * width)
        out[f"{block}.attn.out_proj.weight"] = normal((width, width), proj_std)
        out[f"{block}.attn.out_proj.bias"] = zeros(width)
        out[f"{block}.ln_1.weight"] = ones(width)
        out[f"{block}.ln_1.bias"] = zeros(width)
        out[f"{block}.mlp.c_fc.weight"] = normal((4 * width, width), fc_std)
        out[f"{block}.mlp.c_fc.bias"] = zeros(4 * width)
        out[f"{block}.mlp.c_proj.weight"] = normal((width, 4 * width), proj_std)
        out[f"{block}.mlp.c_proj.bias"] = zeros(width)
        out[f"{block}.ln_2.weight"] = ones(width)
        out[f"{block}.ln_2.bias"] = zeros(width)
    return out


def make_tiny_clip(
    kind: str = "student",
    *,
    image_size: int = 224,
    layers: int | None = None,
    text_layers: int | None = None,
    vision_width: int | None = None,
    text_width: int | None = None,
    patch: int | None = None,
    seed: int = 0,
) -> dict[str, Tensor]:
    """A random CLIP state dict (OpenAI key names and order, float16) of the given kind.

    ``layers`` sets the depth of both towers (default: the kind's own, see ``TINY_CLIP_SPECS``); ``text_layers``
    overrides the text depth alone; ``vision_width`` / ``text_width`` override the kind's widths (multiples of
    64: CLIP's head width), ``patch`` its patch size. ``image_size`` must be a multiple of the patch size. Same seed, same tensors.
    """
    spec = _spec(kind)
    patch = patch if patch is not None else spec["patch"]
    if image_size <= 0 or image_size % patch:
        raise ValueError(
            f"image_size must be a positive multiple of the {kind} patch size {patch}, got {image_size}"
        )
    vision_layers = layers if layers is not None else spec["vision_layers"]
    text_depth = (
        text_layers if text_layers is not None else (layers if layers is not None else spec["text_layers"])
    )
    if vision_layers < 1 or text_depth < 1:
        raise ValueError(
            f"both towers need at least one layer, got vision {vision_layers}, text {text_depth}"
        )

    if spec.get("resnet"):
        return _tiny_resnet_clip(spec, image_size, vision_layers, text_depth, seed)

    generator = torch.Generator().manual_seed(seed)

    def normal(shape: tuple[int, ...], std: float) -> Tensor:
        return (torch.randn(shape, generator=generator) * std).half()

    def zeros(n: int) -> Tensor:
        return torch.zeros(n, dtype=torch.float16)

    def ones(n: int) -> Tensor:
        return torch.ones(n, dtype=torch.float16)

    embed_dim = spec["embed_dim"]
    v_width = vision_width if vision_width is not None else spec["vision_width"]
    t_width = text_width if text_width is not None else spec["text_width"]
    if v_width < 64 or t_width < 64 or v_width % 64 or t_width % 64:
        raise ValueError(f"tower widths must be positive multiples of 64, got vision {v_width}, text {t_width}")
    grid = image_size // patch
    v_scale = v_width**-0.5

    # The order follows OpenAI's CLIP module: own parameters, then visual, transformer, token_embedding, ln_final.
    sd: dict[str, Tensor] = {
        "positional_embedding": normal((CONTEXT_LENGTH, t_width), 0.01),
        "text_projection": normal((t_width, embed_dim), t_width**-0.5),
        "logit_scale": torch.tensor(math.log(100.0)).half(),
        "visual.class_embedding": normal((v_width,), v_scale),
        "visual.positional_embedding": normal((grid * grid + 1, v_width), v_scale),
        "visual.proj": normal((v_width, embed_dim), v_scale),
        "visual.conv1.weight": normal((v_width, 3, patch, patch), (3 * patch * patch) ** -0.5),
        "visual.ln_pre.weight": ones(v_width),
        "visual.ln_pre.bias": zeros(v_width),
    }
    sd.update(_resblocks("visual.transformer", v_width, vision_layers, normal, zeros, ones))
    sd["visual.ln_post.weight"] = ones(v_width)
    sd["visual.ln_post.bias"] = zeros(v_width)
    sd.update(_resblocks("transformer", t_width, text_depth, normal, zeros, ones))
    sd["token_embedding.weight"] = normal((VOCAB_SIZE, t_width), 0.02)
    sd["ln_final.weight"] = ones(t_width)
    sd["ln_final.bias"] = zeros(t_width)
    return sd


def _tiny_resnet_clip(spec: dict, image_size: int, blocks: int, text_depth: int, seed: int) -> dict[str, Tensor]:
    """A ModifiedResNet CLIP built by open_clip (whose key names are OpenAI's), seeded, as a float16 state dict."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIP(
            spec["embed_dim"],
            vision_cfg=CLIPVisionCfg(layers=(blocks,) * 4, width=spec["vision_width"], image_size=image_size),
            text_cfg=CLIPTextCfg(context_length=CONTEXT_LENGTH, vocab_size=VOCAB_SIZE, width=spec["text_width"],
                                 heads=max(1, spec["text_width"] // 64), layers=text_depth),  # fmt: skip
            quick_gelu=True,
        )
        with torch.no_grad():
            model.logit_scale.fill_(math.log(100.0))
    return {key: value.half() if value.is_floating_point() else value for key, value in model.state_dict().items()}


class _TensorTree(nn.Module):
    """A module that only holds tensors under dotted names, so a TorchScript archive reproduces OpenAI's keys."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def _tensor_tree(state_dict: dict[str, Tensor]) -> _TensorTree:
    root = _TensorTree()
    for key, tensor in state_dict.items():
        *parents, leaf = key.split(".")
        module: nn.Module = root
        for part in parents:
            if part not in module._modules:
                module.add_module(part, _TensorTree())
            module = module._modules[part]
        module.register_parameter(leaf, nn.Parameter(tensor.detach().clone(), requires_grad=False))
    return root


def save_tiny_clip(
    state_dict: dict[str, Tensor], path: str | Path, fmt: CheckpointFormat = "state_dict"
) -> Path:
    """Save as a plain state dict (``torch.save``) or as a real TorchScript archive whose
    ``torch.jit.load(...).state_dict()`` has exactly the same keys, dtypes and values (OpenAI's released format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "state_dict":
        torch.save(dict(state_dict), path)
    elif fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning
            )
            torch.jit.save(torch.jit.script(_tensor_tree(state_dict)), str(path))
    else:
        raise ValueError(f"unknown checkpoint format {fmt!r}; choose 'state_dict' or 'torchscript'")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Files are written under OpenAI's names: ViT-L-14.pt (teacher), ViT-B-16.pt (student), RN50.pt (rn50).\n"
            f"--format both writes the state dict to DIR/<file> and the TorchScript copy to "
            f"DIR/{TORCHSCRIPT_SUBDIR}/<file>.\n"
            "Load one with MODEL.BACKBONE.PATH DIR/<file> (or TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH for the teacher)."
        ),
    )
    parser.add_argument("--kind", nargs="+", choices=sorted(TINY_CLIP_SPECS), required=True)
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    parser.add_argument("--format", choices=["state_dict", "torchscript", "both"], default="state_dict")
    parser.add_argument(
        "--image-size", type=int, default=224, help="input resolution (multiple of the patch size)"
    )
    parser.add_argument("--layers", type=int, default=None, help="depth of both towers (default: per kind)")
    parser.add_argument("--text-layers", type=int, default=None, help="depth of the text tower alone")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    formats: list[CheckpointFormat] = (
        ["state_dict", "torchscript"] if args.format == "both" else [args.format]
    )
    for kind in args.kind:
        state_dict = make_tiny_clip(
            kind, image_size=args.image_size, layers=args.layers, text_layers=args.text_layers, seed=args.seed
        )
        for fmt in formats:
            folder = (
                args.out / TORCHSCRIPT_SUBDIR
                if (args.format == "both" and fmt == "torchscript")
                else args.out
            )
            path = save_tiny_clip(state_dict, folder / tiny_clip_filename(kind), fmt)
            n_params = sum(t.numel() for t in state_dict.values())
            print(f"{kind} ({TINY_CLIP_SPECS[kind]['name']}-like, {n_params:,} params, {fmt}): {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
