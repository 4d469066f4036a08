"""build_lr_scheduler: per-epoch LRs equal the original engine's (golden fixture), warmups, and exact resume."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from yacs.config import CfgNode as CN

from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.optim.lr_scheduler import ConstantWarmupScheduler, LinearWarmupScheduler

# the trainer calls optimizer.step() before scheduler.step(), so any torch warning here is a bug
pytestmark = pytest.mark.filterwarnings("error")


def optim_cfg(**overrides) -> CN:
    """The OPTIM node with Dassl's defaults for every key build_optimizer / build_lr_scheduler read."""
    cfg = CN()
    cfg.NAME = "sgd"
    cfg.LR = 0.1
    cfg.WEIGHT_DECAY = 5e-4
    cfg.MOMENTUM = 0.9
    cfg.SGD_DAMPNING = 0
    cfg.SGD_NESTEROV = False
    cfg.RMSPROP_ALPHA = 0.99
    cfg.ADAM_BETA1 = 0.9
    cfg.ADAM_BETA2 = 0.999
    cfg.STAGED_LR = False
    cfg.NEW_LAYERS = ()
    cfg.BASE_LR_MULT = 0.1
    cfg.LR_SCHEDULER = "single_step"
    cfg.STEPSIZE = (-1,)
    cfg.GAMMA = 0.1
    cfg.MAX_EPOCH = 10
    cfg.WARMUP_EPOCH = -1
    cfg.WARMUP_TYPE = "linear"
    cfg.WARMUP_CONS_LR = 1e-5
    cfg.WARMUP_MIN_LR = 1e-5
    cfg.WARMUP_RECOUNT = True
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def build(cfg: CN):
    params = nn.ParameterList([nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2))])
    optimizer = build_optimizer(params, cfg)
    return optimizer, build_lr_scheduler(optimizer, cfg)


def run_epochs(optimizer, scheduler, n_epochs: int) -> list[float]:
    """LR seen during each epoch, stepping the scheduler after the epoch's last optimizer step (as trainers do)."""
    lrs = []
    for _ in range(n_epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def assert_rel_close(actual: list[float], expected: list[float], rel: float = 1e-12) -> None:
    assert len(actual) == len(expected)
    for epoch, (a, e) in enumerate(zip(actual, expected)):
        assert abs(a - e) <= rel * abs(e), f"epoch {epoch}: {a!r} != {e!r}"


def test_golden_schedules_of_the_original_engine(golden_dir):
    manifest = json.loads((golden_dir / "engine" / "manifest.json").read_text())
    schedules = manifest["lr_schedules"]["schedules"]
    assert len(schedules) >= 4
    for name, schedule in schedules.items():
        cfg = optim_cfg(**schedule["OPTIM"])
        optimizer, scheduler = build(cfg)
        during = run_epochs(optimizer, scheduler, cfg.MAX_EPOCH)
        assert_rel_close(during, schedule["lr_during_epoch"])
        after = optimizer.param_groups[0]["lr"]
        assert abs(after - schedule["lr_after_last_epoch"]) <= 1e-12 * schedule["lr_after_last_epoch"], name
        assert scheduler.get_last_lr()[0] == after


def test_promptkd_schedule_closed_form():
    """docs/design.md#faithful: lr(0) = 1e-5, lr(e>=1) = LR * (1 + cos(pi (e-1) / MAX_EPOCH)) / 2."""
    cfg = optim_cfg(
        LR=0.005,
        LR_SCHEDULER="cosine",
        MAX_EPOCH=20,
        WARMUP_EPOCH=1,
        WARMUP_TYPE="constant",
        WARMUP_CONS_LR=1e-5,
    )
    optimizer, scheduler = build(cfg)
    lrs = run_epochs(optimizer, scheduler, 21)
    expected = [1e-5] + [0.005 * 0.5 * (1 + math.cos(math.pi * (e - 1) / 20)) for e in range(1, 22)]
    assert_rel_close(lrs, expected[:21], rel=1e-12)
    assert isinstance(scheduler, ConstantWarmupScheduler)


def test_warmup_classes_are_torch_schedulers_without_verbose():
    assert issubclass(ConstantWarmupScheduler, LRScheduler)
    assert issubclass(LinearWarmupScheduler, LRScheduler)
    _, scheduler = build(optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=2))
    assert "verbose" not in scheduler.state_dict()


@pytest.mark.parametrize(
    ("stepsize", "expected_step"),
    [((-1,), 10), ((0,), 10), ((3,), 3), ((2, 4), 4), ([5], 5), (3, 3)],
)
def test_single_step_uses_the_last_stepsize_and_max_epoch_for_nonpositive(stepsize, expected_step):
    cfg = optim_cfg(LR_SCHEDULER="single_step", STEPSIZE=stepsize, GAMMA=0.5, MAX_EPOCH=10)
    optimizer, scheduler = build(cfg)
    lrs = run_epochs(optimizer, scheduler, 12)
    expected = [0.1 * 0.5 ** (e // expected_step) for e in range(12)]
    assert_rel_close(lrs, expected)


def test_single_step_rejects_a_non_integer_stepsize():
    with pytest.raises(TypeError, match="integer"):
        build(optim_cfg(LR_SCHEDULER="single_step", STEPSIZE=(2.5,)))


def test_multi_step():
    cfg = optim_cfg(LR_SCHEDULER="multi_step", STEPSIZE=(2, 5), GAMMA=0.1)
    optimizer, scheduler = build(cfg)
    lrs = run_epochs(optimizer, scheduler, 7)
    assert_rel_close(lrs, [0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001])
    with pytest.raises(TypeError, match="list"):
        build(optim_cfg(LR_SCHEDULER="multi_step", STEPSIZE=3))


def test_linear_warmup_then_cosine():
    # epoch 0: WARMUP_MIN_LR; epochs 1..W-1: LR * e / W; then the cosine restarted at t = 0 (WARMUP_RECOUNT True)
    cfg = optim_cfg(
        LR_SCHEDULER="cosine", MAX_EPOCH=10, WARMUP_EPOCH=3, WARMUP_TYPE="linear", WARMUP_MIN_LR=1e-5
    )
    optimizer, scheduler = build(cfg)
    lrs = run_epochs(optimizer, scheduler, 12)
    expected = [1e-5, 0.1 / 3, 0.2 / 3] + [0.1 * 0.5 * (1 + math.cos(math.pi * t / 10)) for t in range(9)]
    assert_rel_close(lrs, expected)
    assert isinstance(scheduler, LinearWarmupScheduler)


def test_linear_warmup_then_multi_step():
    cfg = optim_cfg(
        LR_SCHEDULER="multi_step", STEPSIZE=(3,), WARMUP_EPOCH=2, WARMUP_TYPE="linear", WARMUP_MIN_LR=1e-4
    )
    optimizer, scheduler = build(cfg)
    # the successor is stepped only from epoch 3 on, so its milestone 3 is reached in epoch 2 + 3 = 5
    assert_rel_close(run_epochs(optimizer, scheduler, 7), [1e-4, 0.05, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_constant_warmup_without_recount_keeps_dassls_chained_cosine():
    # WARMUP_RECOUNT False sets the successor's last_epoch to W before wrapping; torch's chainable cosine then scales
    # LR by (1 + cos(pi t / T)) / (1 + cos(pi W / T)) for t = W+1, W+2, ... (Dassl's behaviour, kept as is)
    cfg = optim_cfg(
        LR_SCHEDULER="cosine",
        MAX_EPOCH=10,
        WARMUP_EPOCH=2,
        WARMUP_TYPE="constant",
        WARMUP_CONS_LR=1e-3,
        WARMUP_RECOUNT=False,
    )
    optimizer, scheduler = build(cfg)
    lrs = run_epochs(optimizer, scheduler, 8)
    denom = 1 + math.cos(math.pi * 2 / 10)
    expected = [1e-3, 1e-3, 0.1] + [0.1 * (1 + math.cos(math.pi * t / 10)) / denom for t in range(3, 8)]
    assert_rel_close(lrs, expected)


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="cosine"):
        build(optim_cfg(LR_SCHEDULER="poly"))
    with pytest.raises(ValueError, match="WARMUP_TYPE"):
        build(optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="exp"))


PROMPTKD = {
    "LR": 0.005,
    "LR_SCHEDULER": "cosine",
    "MAX_EPOCH": 20,
    "WARMUP_EPOCH": 1,
    "WARMUP_TYPE": "constant",
    "WARMUP_CONS_LR": 1e-5,
}


def _save(obj) -> dict:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # plain data only: no pickled scheduler objects


RESUME_CASES = [
    pytest.param(overrides, order, id=f"{name}-{order}")
    for name, overrides in [
        ("promptkd", PROMPTKD),
        ("linear-multi_step", {"LR_SCHEDULER": "multi_step", "STEPSIZE": (2, 4), "WARMUP_EPOCH": 2}),
        ("cosine", {"LR_SCHEDULER": "cosine"}),
    ]
    # a bare torch scheduler takes its LR from the optimizer state; only our warmup wrappers restore it themselves
    for order in (
        ["optimizer_first", "scheduler_first", "scheduler_only"]
        if "WARMUP_EPOCH" in overrides
        else ["optimizer_first", "scheduler_first"]
    )
]


@pytest.mark.parametrize("completed", [0, 1, 2, 7])
@pytest.mark.parametrize(("overrides", "order"), RESUME_CASES)
def test_state_dict_round_trip_continues_identically(completed, order, overrides):
    cfg = optim_cfg(**overrides)
    total = 10
    optimizer, scheduler = build(cfg)
    reference = run_epochs(optimizer, scheduler, total)

    optimizer, scheduler = build(cfg)
    first = run_epochs(optimizer, scheduler, completed)
    checkpoint = _save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})

    # a fresh run, as the trainer builds it before resuming
    optimizer, scheduler = build(cfg)
    if order == "optimizer_first":
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
    elif order == "scheduler_first":
        scheduler.load_state_dict(checkpoint["scheduler"])
        optimizer.load_state_dict(checkpoint["optimizer"])
    else:
        scheduler.load_state_dict(checkpoint["scheduler"])
    resumed = run_epochs(optimizer, scheduler, total - completed)
    assert first + resumed == reference


def test_loads_dassls_state_dict_holding_the_successor_object():
    """Upstream checkpoints store the warmup scheduler's whole __dict__, the successor scheduler object included."""
    cfg = optim_cfg(**PROMPTKD)
    optimizer, scheduler = build(cfg)
    reference = run_epochs(optimizer, scheduler, 12)

    optimizer, scheduler = build(cfg)
    first = run_epochs(optimizer, scheduler, 5)
    upstream_state = {k: v for k, v in scheduler.__dict__.items() if k != "optimizer"}
    upstream_state["verbose"] = False
    assert isinstance(upstream_state["successor"], LRScheduler)

    optimizer, fresh = build(cfg)
    fresh.load_state_dict(upstream_state)
    assert fresh.successor is not scheduler.successor
    assert first + run_epochs(optimizer, fresh, 7) == reference
