"""Helpers shared by the benchmark scripts: full-size random-weight CLIPs, timing, device info."""

from __future__ import annotations

import time
from collections.abc import Callable

import open_clip
import torch

ARCHS = {"ViT-B/16": "ViT-B-16-quickgelu", "ViT-L/14": "ViT-L-14-quickgelu"}


def random_clip(name: str, device: torch.device, token_layout: str = "tokens_first") -> torch.nn.Module:
    """A CLIP with the real architecture of ``name`` (OpenAI widths, QuickGELU) and random weights, frozen, its
    transformers in ``token_layout`` (MODEL.BACKBONE.TOKEN_LAYOUT; the trainers' default)."""
    from trainers.backbone import set_token_layout

    model = set_token_layout(open_clip.create_model(ARCHS[name], pretrained=None), token_layout)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval().to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"
