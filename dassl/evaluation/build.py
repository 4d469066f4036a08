"""The evaluator registry and ``build_evaluator``, which picks the evaluator named by ``cfg.TEST.EVALUATOR``."""

from __future__ import annotations

import difflib
from typing import Any

from dassl.utils.registry import Registry

EVALUATOR_REGISTRY = Registry("EVALUATOR")

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator"]


def build_evaluator(cfg: Any, **kwargs: Any) -> Any:
    """Instantiate ``EVALUATOR_REGISTRY[cfg.TEST.EVALUATOR](cfg, **kwargs)`` (trainers pass ``lab2cname=``)."""
    name = cfg.TEST.EVALUATOR
    available = EVALUATOR_REGISTRY.registered_names()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=1)
        hint = f" (do you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"TEST.EVALUATOR must be one of {available}, but got {name!r}{hint}")
    if cfg.get("VERBOSE", True):
        print(f"Loading evaluator: {name}")
    return EVALUATOR_REGISTRY.get(name)(cfg, **kwargs)
