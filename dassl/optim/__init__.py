"""Optimizers and learning-rate schedulers built from the OPTIM config node (Dassl.pytorch's ``dassl.optim``)."""

from .lr_scheduler import ConstantWarmupScheduler, LinearWarmupScheduler, build_lr_scheduler
from .optimizer import build_optimizer

__all__ = ["ConstantWarmupScheduler", "LinearWarmupScheduler", "build_lr_scheduler", "build_optimizer"]
