"""build_optimizer: Dassl's name -> torch class mapping, staged LR, and frozen parameters left untouched."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from yacs.config import CfgNode as CN

from dassl.optim import build_optimizer
from dassl.optim.optimizer import AVAI_OPTIMS


def optim_cfg(**overrides) -> CN:
    """The OPTIM node with Dassl's defaults for the keys build_optimizer reads (distinctive values where useful)."""
    cfg = CN()
    cfg.NAME = "sgd"
    cfg.LR = 0.005
    cfg.WEIGHT_DECAY = 5e-4
    cfg.MOMENTUM = 0.8
    cfg.SGD_DAMPNING = 0.1
    cfg.SGD_NESTEROV = False
    cfg.RMSPROP_ALPHA = 0.97
    cfg.ADAM_BETA1 = 0.85
    cfg.ADAM_BETA2 = 0.995
    cfg.STAGED_LR = False
    cfg.NEW_LAYERS = ()
    cfg.BASE_LR_MULT = 0.1
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


class TwoPart(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)


@pytest.mark.parametrize(
    ("name", "cls", "expected"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.8, "dampening": 0.1, "nesterov": False}),
        ("adam", torch.optim.Adam, {"betas": (0.85, 0.995), "amsgrad": False}),
        ("amsgrad", torch.optim.Adam, {"betas": (0.85, 0.995), "amsgrad": True}),
        ("rmsprop", torch.optim.RMSprop, {"momentum": 0.8, "alpha": 0.97}),
        ("radam", torch.optim.RAdam, {"betas": (0.85, 0.995), "decoupled_weight_decay": True}),
        ("adamw", torch.optim.AdamW, {"betas": (0.85, 0.995)}),
    ],
)
def test_each_name_builds_the_torch_class_with_cfg_values(name, cls, expected):
    model = TwoPart()
    optimizer = build_optimizer(model, optim_cfg(NAME=name))
    assert type(optimizer) is cls
    assert optimizer.defaults["lr"] == 0.005
    assert optimizer.defaults["weight_decay"] == 5e-4
    for key, value in expected.items():
        assert optimizer.defaults[key] == value, key
    # an nn.Module hands over all its parameters, in one group
    assert len(optimizer.param_groups) == 1
    assert len(optimizer.param_groups[0]["params"]) == 4


def test_sgd_nesterov_flag_is_passed():
    optimizer = build_optimizer(TwoPart(), optim_cfg(SGD_NESTEROV=True, SGD_DAMPNING=0))
    assert optimizer.defaults["nesterov"] is True


def test_unknown_name_lists_the_supported_ones():
    with pytest.raises(ValueError) as excinfo:
        build_optimizer(TwoPart(), optim_cfg(NAME="lamb"))
    message = str(excinfo.value)
    assert "lamb" in message
    for name in AVAI_OPTIMS:
        assert name in message


def test_iterable_of_params_and_param_group_dicts():
    model = TwoPart()
    optimizer = build_optimizer(model.head.parameters(), optim_cfg())
    assert [p.shape for p in optimizer.param_groups[0]["params"]] == [torch.Size([2, 4]), torch.Size([2])]

    groups = [{"params": model.backbone.parameters(), "lr": 0.5}, {"params": model.head.parameters()}]
    optimizer = build_optimizer(None, optim_cfg(), param_groups=groups)
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 0.005]


@pytest.mark.parametrize("new_layers", [("head",), ["head"], "head"])
def test_staged_lr_splits_new_and_base_layers(new_layers):
    model = TwoPart()
    optimizer = build_optimizer(model, optim_cfg(STAGED_LR=True, NEW_LAYERS=new_layers, BASE_LR_MULT=0.1))
    base, new = optimizer.param_groups
    assert base["lr"] == pytest.approx(0.005 * 0.1, rel=1e-15)
    assert new["lr"] == 0.005
    assert {id(p) for p in base["params"]} == {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in new["params"]} == {id(p) for p in model.head.parameters()}


def test_staged_lr_needs_a_module():
    with pytest.raises(TypeError, match="nn.Module"):
        build_optimizer(list(TwoPart().parameters()), optim_cfg(STAGED_LR=True, NEW_LAYERS=("head",)))


def test_staged_lr_with_param_groups_is_ignored_with_a_warning():
    # Dassl warns (it does not raise) and optimises the given groups as they are
    model = TwoPart()
    with pytest.warns(UserWarning, match="STAGED_LR"):
        optimizer = build_optimizer(
            model,
            optim_cfg(STAGED_LR=True, NEW_LAYERS=("head",)),
            param_groups=[{"params": model.head.parameters()}],
        )
    assert len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["lr"] == 0.005


def test_frozen_params_in_a_module_list_are_not_updated():
    """PromptKD passes an nn.ModuleList holding frozen modules: SGD must move (and decay) only trainable tensors."""
    torch.manual_seed(0)
    frozen = nn.Linear(3, 3)
    trainable = nn.Linear(3, 1)
    for p in frozen.parameters():
        p.requires_grad_(False)
    modules = nn.ModuleList([frozen, trainable])
    cfg = optim_cfg(NAME="sgd", LR=0.1, WEIGHT_DECAY=0.01, MOMENTUM=0.9, SGD_DAMPNING=0)
    optimizer = build_optimizer(modules, cfg)
    assert len(optimizer.param_groups[0]["params"]) == 4  # frozen ones are handed over too

    frozen_before = [p.clone() for p in frozen.parameters()]
    w0, b0 = trainable.weight.detach().clone(), trainable.bias.detach().clone()
    x = torch.randn(5, 3)
    loss = trainable(frozen(x)).sum()
    loss.backward()
    grad_w, grad_b = trainable.weight.grad.clone(), trainable.bias.grad.clone()
    optimizer.step()

    for before, after in zip(frozen_before, frozen.parameters()):
        assert torch.equal(before, after)
    # first SGD step: momentum buffer = grad + wd * p, update p -= lr * buffer
    torch.testing.assert_close(trainable.weight.detach(), w0 - 0.1 * (grad_w + 0.01 * w0))
    torch.testing.assert_close(trainable.bias.detach(), b0 - 0.1 * (grad_b + 0.01 * b0))


def _dassl_radam_reference(p, grads, lr, betas, eps, wd):
    """Dassl's RAdam update rule (Liu et al.), written out from its formulas, in float64."""
    beta1, beta2 = betas
    m = torch.zeros_like(p)
    v = torch.zeros_like(p)
    n_sma_max = 2 / (1 - beta2) - 1
    for t, g in enumerate(grads, start=1):
        v = v * beta2 + (1 - beta2) * g * g
        m = m * beta1 + (1 - beta1) * g
        beta2_t = beta2**t
        n_sma = n_sma_max - 2 * t * beta2_t / (1 - beta2_t)
        if n_sma >= 5:
            step_size = math.sqrt(
                (1 - beta2_t)
                * (n_sma - 4)
                / (n_sma_max - 4)
                * (n_sma - 2)
                / n_sma
                * n_sma_max
                / (n_sma_max - 2)
            ) / (1 - beta1**t)
            p = p - wd * lr * p
            p = p - step_size * lr * m / (v.sqrt() + eps)
        else:  # degenerated to SGD with bias-corrected momentum
            step_size = 1.0 / (1 - beta1**t)
            p = p - wd * lr * p
            p = p - step_size * lr * m
    return p


def test_radam_matches_dassls_radam_update():
    """torch's RAdam with decoupled weight decay reproduces Dassl's RAdam, in both of its phases."""
    torch.manual_seed(0)
    start = torch.randn(6, dtype=torch.float64)
    grads = [
        torch.randn(6, dtype=torch.float64) for _ in range(12)
    ]  # N_sma < 5 for the first steps, then >= 5
    param = nn.Parameter(start.clone())
    cfg = optim_cfg(NAME="radam", LR=0.01, WEIGHT_DECAY=0.05, ADAM_BETA1=0.9, ADAM_BETA2=0.999)
    optimizer = build_optimizer([param], cfg)
    for g in grads:
        param.grad = g.clone()
        optimizer.step()
    expected = _dassl_radam_reference(start, grads, lr=0.01, betas=(0.9, 0.999), eps=1e-8, wd=0.05)
    torch.testing.assert_close(param.detach(), expected, rtol=1e-10, atol=1e-12)
