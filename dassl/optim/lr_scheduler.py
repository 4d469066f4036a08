"""``build_lr_scheduler`` and Dassl's warmup wrappers, reproducing Dassl.pytorch's per-epoch learning rates.

The trainer steps the scheduler once per epoch, after the last batch. With a warmup of W epochs the wrapper owns
the LR while its own ``last_epoch < W``; from then on each ``step()`` steps the wrapped scheduler (the
*successor*) instead and copies its LR. For PromptKD's config (cosine, T_max = MAX_EPOCH, 1 constant warmup epoch
at 1e-5) that gives, for 0-indexed epoch e::

    lr(0) = 1e-5,  lr(e >= 1) = LR * 0.5 * (1 + cos(pi * (e - 1) / MAX_EPOCH))

because the successor is stepped for the first time only after epoch 1 (its value in epoch 1 is the one it set at
construction), and torch's chainable cosine formula rescales the current group LR, which the wrapper has already
put back to LR. The golden fixture ``engine/manifest.json`` (made with the original engine) pins these values.

Differences from Dassl, none of which changes a learning rate: the deprecated ``verbose`` argument is accepted but
never passed to torch; ``state_dict()`` stores the successor as its own state dict (a plain dict, loadable with
``torch.load(weights_only=True)``) instead of pickling the successor object; ``load_state_dict()`` also accepts the
upstream form and writes the restored LR into the optimizer so a resumed run continues with identical LRs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, _LRScheduler

AVAI_SCHEDS = ["single_step", "multi_step", "cosine"]

__all__ = [
    "AVAI_SCHEDS",
    "ConstantWarmupScheduler",
    "LinearWarmupScheduler",
    "build_lr_scheduler",
]


class _BaseWarmupScheduler(_LRScheduler):
    """Owns the LR for the first ``warmup_epoch`` epochs, then hands every step to ``successor``."""

    def __init__(
        self,
        optimizer: Optimizer,
        successor: LRScheduler,
        warmup_epoch: int,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        # ``verbose`` is kept for Dassl's signature only: torch deprecated it and we never forward it.
        del verbose
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch: our own warmup LR first, then the successor's schedule (Dassl's mechanics)."""
        if self.last_epoch >= self.warmup_epoch:
            # our own last_epoch stops counting here, exactly as in Dassl
            if epoch is None:
                self.successor.step()
            else:
                self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Our state plus the successor's state dict (plain values only, so ``weights_only`` loading works)."""
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "successor")}
        state["successor"] = self.successor.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore our state and the successor's, and put the restored LR back into the optimizer.

        Accepts our format and Dassl's (whose ``successor`` entry is the pickled scheduler object itself).
        """
        state = dict(state_dict)
        successor_state = state.pop("successor", None)
        state.pop("verbose", None)  # written by old torch versions; meaningless now
        self.__dict__.update(state)
        if isinstance(successor_state, LRScheduler):
            successor_state = successor_state.state_dict()
        if successor_state is not None:
            successor_state = {key: value for key, value in successor_state.items() if key != "verbose"}
            self.successor.load_state_dict(successor_state)
        # the successor's chainable formulas scale the *current* group LR, so it must be the restored one even if
        # the optimizer state is loaded after us or not at all
        last_lr = getattr(self, "_last_lr", None)
        if last_lr is not None:
            for group, lr in zip(self.optimizer.param_groups, last_lr, strict=True):
                group["lr"] = lr


class ConstantWarmupScheduler(_BaseWarmupScheduler):
    """Warmup at a constant ``cons_lr`` for ``warmup_epoch`` epochs (PromptKD/PromptSRC: 1 epoch at 1e-5)."""

    def __init__(
        self,
        optimizer: Optimizer,
        successor: LRScheduler,
        warmup_epoch: int,
        cons_lr: float,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch, verbose)

    def get_lr(self) -> list[float]:
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]


class LinearWarmupScheduler(_BaseWarmupScheduler):
    """Warmup rising linearly: ``min_lr`` in epoch 0, then ``base_lr * e / warmup_epoch`` (Dassl's rule)."""

    def __init__(
        self,
        optimizer: Optimizer,
        successor: LRScheduler,
        warmup_epoch: int,
        min_lr: float,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        self.min_lr = min_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch, verbose)

    def get_lr(self) -> list[float]:
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        if self.last_epoch == 0:
            return [self.min_lr for _ in self.base_lrs]
        return [lr * self.last_epoch / self.warmup_epoch for lr in self.base_lrs]


def build_lr_scheduler(optimizer: Optimizer, optim_cfg: Any) -> LRScheduler:
    """Build the scheduler named by ``optim_cfg.LR_SCHEDULER``, wrapped in a warmup if ``WARMUP_EPOCH > 0``.

    Reads LR_SCHEDULER, STEPSIZE, GAMMA, MAX_EPOCH, WARMUP_EPOCH, WARMUP_TYPE, WARMUP_CONS_LR, WARMUP_MIN_LR and
    WARMUP_RECOUNT. Step it once per epoch.

    * single_step: ``StepLR`` with the last element of STEPSIZE (if it is a list/tuple); a value <= 0 means
      MAX_EPOCH.
    * multi_step: ``MultiStepLR`` with milestones STEPSIZE.
    * cosine: ``CosineAnnealingLR`` with ``T_max = MAX_EPOCH``.
    * WARMUP_RECOUNT False sets the successor's ``last_epoch`` to WARMUP_EPOCH before wrapping, so the successor's
      schedule counts the warmup epochs; True (the default) starts it after the warmup.
    """
    lr_scheduler = optim_cfg.LR_SCHEDULER
    stepsize = optim_cfg.STEPSIZE
    gamma = optim_cfg.GAMMA
    max_epoch = optim_cfg.MAX_EPOCH

    if lr_scheduler not in AVAI_SCHEDS:
        raise ValueError(f"OPTIM.LR_SCHEDULER must be one of {AVAI_SCHEDS}, but got {lr_scheduler!r}")

    scheduler: LRScheduler
    if lr_scheduler == "single_step":
        if isinstance(stepsize, (list, tuple)):
            stepsize = stepsize[-1]
        if not isinstance(stepsize, int):
            raise TypeError(
                f"For the single_step scheduler OPTIM.STEPSIZE must be an integer, but got {type(stepsize).__name__}"
            )
        if stepsize <= 0:
            stepsize = max_epoch
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=stepsize, gamma=gamma)
    elif lr_scheduler == "multi_step":
        if not isinstance(stepsize, (list, tuple)):
            raise TypeError(
                f"For the multi_step scheduler OPTIM.STEPSIZE must be a list, but got {type(stepsize).__name__}"
            )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=stepsize, gamma=gamma)
    else:  # cosine
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, float(max_epoch))

    if optim_cfg.WARMUP_EPOCH > 0:
        if not optim_cfg.WARMUP_RECOUNT:
            scheduler.last_epoch = optim_cfg.WARMUP_EPOCH

        if optim_cfg.WARMUP_TYPE == "constant":
            scheduler = ConstantWarmupScheduler(
                optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_CONS_LR
            )
        elif optim_cfg.WARMUP_TYPE == "linear":
            scheduler = LinearWarmupScheduler(
                optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_MIN_LR
            )
        else:
            raise ValueError(
                f"OPTIM.WARMUP_TYPE must be 'constant' or 'linear', but got {optim_cfg.WARMUP_TYPE!r}"
            )

    return scheduler
