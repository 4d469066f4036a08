"""``get_cfg_default()`` as in Dassl, plus config merging that explains its errors instead of raising tracebacks."""

from .defaults import _C as cfg_default
from .merge import ConfigError, merge_cfg_from_file, merge_cfg_from_list


def get_cfg_default():
    """A fresh, mutable copy of the engine defaults."""
    return cfg_default.clone()


def clean_cfg(cfg, trainer):
    """Kept for Dassl API compatibility: Dassl deletes the other trainers' nodes here; we have none to delete."""
    return cfg


__all__ = ["get_cfg_default", "clean_cfg", "ConfigError", "merge_cfg_from_file", "merge_cfg_from_list"]
