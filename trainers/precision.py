"""Mixed precision done one way for every trainer (``TRAINER.<METHOD>.PREC``).

Upstream casts the whole CLIP to fp16 and updates fp16 prompts with plain SGD and no loss scaling; its ``amp``
branches crash. Here trainable tensors are always fp32 masters; only the frozen backbone may be stored in half
precision, and compute runs under autocast:

=======  ==================  ================  ===========
PREC     frozen weights      compute           loss scaling
=======  ==================  ================  ===========
fp32     fp32                fp32              no
fp16     fp16                autocast fp16     GradScaler
bf16     bf16                autocast bf16     no
amp      fp32                autocast fp16     GradScaler
=======  ==================  ================  ===========
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn as nn

PRECISIONS = ("fp32", "fp16", "bf16", "amp")

_STORAGE = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "amp": torch.float32}
_COMPUTE = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16, "amp": torch.float16}


class Precision:
    """Storage dtype of frozen weights, the autocast context, and a loss scaler where fp16 needs one."""

    def __init__(self, prec: str, device: torch.device | str) -> None:
        if prec not in PRECISIONS:
            raise ValueError(f"PREC must be one of {PRECISIONS}, got '{prec}'")
        self.prec = prec
        self.device = torch.device(device)
        self.storage_dtype = _STORAGE[prec]
        self.compute_dtype = _COMPUTE[prec]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.compute_dtype is torch.float16)

    def cast_frozen(self, module: nn.Module) -> nn.Module:
        """Store frozen matrix weights in the storage dtype, as CLIP's own ``convert_weights`` does.

        Conv, Linear and attention weights plus ``proj``/``text_projection`` are cast; LayerNorm parameters and
        embeddings stay fp32 (autocast computes normalisations in fp32), and trainable tensors are never cast.
        """
        if self.storage_dtype is torch.float32:
            return module

        def cast(owner: nn.Module, name: str) -> None:
            p = getattr(owner, name, None)
            if isinstance(p, nn.Parameter) and not p.requires_grad and p.is_floating_point():
                p.data = p.data.to(self.storage_dtype)

        for m in module.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                cast(m, "weight")
                cast(m, "bias")
            elif isinstance(m, nn.MultiheadAttention):
                for name in ("in_proj_weight", "in_proj_bias", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                    cast(m, name)
            for name in ("text_projection", "proj"):
                cast(m, name)
        return module

    def autocast(self) -> AbstractContextManager:
        if self.compute_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.compute_dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        """Unscale, skip the step on inf/NaN gradients (fp16), update the scale."""
        for optimizer in optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.scaler.load_state_dict(state)
