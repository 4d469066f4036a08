"""``build_optimizer``: the OPTIM config node turned into a torch optimizer, exactly as Dassl.pytorch does it.

Trainers pass either a module (PromptKD passes an ``nn.ModuleList``) or an iterable of parameters / param-group
dicts. With a module and no staged LR *all* of its parameters are handed to the optimizer, frozen ones included:
frozen parameters never get a ``.grad``, so SGD (and every torch optimizer) skips them, and weight decay reaches
only the trainable ones. PromptKD's results depend on that, so we keep it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

AVAI_OPTIMS = ["adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"]

__all__ = ["AVAI_OPTIMS", "build_optimizer"]


def _staged_param_groups(model: nn.Module, lr: float, new_layers: Any, base_lr_mult: float) -> list[dict]:
    """Split the direct children of ``model`` into base layers (LR * BASE_LR_MULT) and new layers (LR)."""
    if isinstance(model, nn.DataParallel):
        model = model.module
    if new_layers is None or (isinstance(new_layers, str) and not new_layers):
        warnings.warn(
            "OPTIM.NEW_LAYERS is empty, so OPTIM.STAGED_LR has no effect", UserWarning, stacklevel=3
        )
        new_layers = []
    elif isinstance(new_layers, str):
        new_layers = [new_layers]

    base_params: list[nn.Parameter] = []
    new_params: list[nn.Parameter] = []
    for name, module in model.named_children():
        if name in new_layers:
            new_params += list(module.parameters())
        else:
            base_params += list(module.parameters())

    # the new-layer group has no "lr" key, so it takes the optimizer's default (OPTIM.LR)
    return [{"params": base_params, "lr": lr * base_lr_mult}, {"params": new_params}]


def build_optimizer(
    model: nn.Module | Iterable[Any],
    optim_cfg: Any,
    param_groups: Iterable[Any] | None = None,
) -> torch.optim.Optimizer:
    """Build the optimizer named by ``optim_cfg.NAME`` (Dassl's argument mapping, so runs match upstream).

    Args:
        model: an ``nn.Module`` or an iterable of parameters / param-group dicts.
        optim_cfg: the ``cfg.OPTIM`` node (NAME, LR, WEIGHT_DECAY, MOMENTUM, SGD_DAMPNING, SGD_NESTEROV,
            RMSPROP_ALPHA, ADAM_BETA1, ADAM_BETA2, STAGED_LR, NEW_LAYERS, BASE_LR_MULT).
        param_groups: if given, optimised as they are and ``model`` is ignored (STAGED_LR is then ignored
            with a warning, as in Dassl).
    """
    optim = optim_cfg.NAME
    lr = optim_cfg.LR
    weight_decay = optim_cfg.WEIGHT_DECAY
    momentum = optim_cfg.MOMENTUM
    betas = (optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2)
    staged_lr = optim_cfg.STAGED_LR

    if optim not in AVAI_OPTIMS:
        raise ValueError(
            f"OPTIM.NAME must be one of {AVAI_OPTIMS}, but got {optim!r}; set OPTIM.NAME in the trainer config"
        )

    if param_groups is not None and staged_lr:
        warnings.warn(
            "OPTIM.STAGED_LR is ignored because param_groups were given; "
            "bind per-group learning rates in param_groups yourself",
            UserWarning,
            stacklevel=2,
        )

    if param_groups is None:
        if staged_lr:
            if not isinstance(model, nn.Module):
                raise TypeError(
                    "When OPTIM.STAGED_LR is True, the model given to build_optimizer() must be an nn.Module, "
                    f"but got {type(model).__name__}"
                )
            param_groups = _staged_param_groups(model, lr, optim_cfg.NEW_LAYERS, optim_cfg.BASE_LR_MULT)
        elif isinstance(model, nn.Module):
            param_groups = model.parameters()
        else:
            param_groups = model

    if optim == "adam":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
    if optim == "amsgrad":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas, amsgrad=True)
    if optim == "sgd":
        return torch.optim.SGD(
            param_groups,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            dampening=optim_cfg.SGD_DAMPNING,
            nesterov=optim_cfg.SGD_NESTEROV,
        )
    if optim == "rmsprop":
        return torch.optim.RMSprop(
            param_groups, lr=lr, momentum=momentum, weight_decay=weight_decay, alpha=optim_cfg.RMSPROP_ALPHA
        )
    if optim == "radam":
        # Dassl ships its own RAdam (Liu et al.), which decays weights decoupled (p -= lr * wd * p) and falls back to
        # bias-corrected SGD with momentum while the variance rectification is undefined. torch's RAdam with
        # decoupled_weight_decay=True computes the same update; tests/dassl/test_optim.py checks it step by step.
        return torch.optim.RAdam(
            param_groups, lr=lr, weight_decay=weight_decay, betas=betas, decoupled_weight_decay=True
        )
    # adamw
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
