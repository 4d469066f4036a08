"""Merge yaml files and ``KEY VALUE`` lists into a yacs config with errors a person can act on.

yacs itself raises ``KeyError: 'Non-existent config key'`` or ``ValueError: Type mismatch`` tracebacks. Here the
same checks say which key, from which file or flag, what was expected and how to fix it. One lossless coercion
is added: an int given for a float key (``KD_WEIGHT 1000``) is accepted as that float; upstream yacs rejects it.
Upstream files that set a str key to a bool are read as their code reads them (``UPSTREAM_BOOL_VALUES``).
"""

from __future__ import annotations

import difflib
from ast import literal_eval
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from yacs.config import CfgNode

from dassl.utils.errors import UserError


class ConfigError(UserError, ValueError):
    """A config file or override that cannot be merged; the message says what to change."""


def _decode(value: Any) -> Any:
    """yacs semantics: strings go through ``literal_eval`` when they parse, else stay strings."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return value
    try:
        return literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def leaf_keys(cfg: CfgNode, prefix: str = "") -> list[str]:
    """Every full key (``A.B.C``) of the tree."""
    keys: list[str] = []
    for key, value in cfg.items():
        full = f"{prefix}{key}"
        if isinstance(value, CfgNode):
            keys.extend(leaf_keys(value, full + "."))
        else:
            keys.append(full)
    return keys


def _unknown_key(cfg: CfgNode, full_key: str, source: str) -> ConfigError:
    suggestions = difflib.get_close_matches(full_key, leaf_keys(cfg), n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
    return ConfigError(
        f"Unknown config key '{full_key}' (from {source}).{hint} Every key needs a default: engine keys live in "
        "dassl/config/defaults.py, trainer keys in trainers/config.py (extend_cfg). Check the spelling, or add "
        "the default there if this is a new option."
    )


# KgCoOp's yamls write `CTX_INIT: True` (its train.py declares a bool); its prompt learner then initialises from
# "a photo of a" whatever the value, and False means random context vectors.
UPSTREAM_BOOL_VALUES = {
    "TRAINER.COOP.CTX_INIT": {True: "a photo of a", False: ""},
    "TRAINER.COCOOP.CTX_INIT": {True: "a photo of a", False: ""},
}


def _coerce(value: Any, default: Any, full_key: str, source: str) -> Any:
    value = _decode(value)
    if isinstance(value, bool) and full_key in UPSTREAM_BOOL_VALUES:
        return UPSTREAM_BOOL_VALUES[full_key][value]
    if isinstance(default, CfgNode):
        raise ConfigError(
            f"Config key '{full_key}' (from {source}) is a group of keys, not a single value; "
            f"set one of its keys instead, e.g. {full_key}.{next(iter(default.keys()), 'KEY')}."
        )
    if type(value) is type(default):
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # lossless: 1000 -> 1000.0
    if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)):
        return type(default)(value)
    raise ConfigError(
        f"Config key '{full_key}' (from {source}) expects a {type(default).__name__} (default {default!r}) "
        f"but got {value!r} ({type(value).__name__}). "
        + _type_hint(default)
    )


def _type_hint(default: Any) -> str:
    if isinstance(default, bool):
        return "Write True or False."
    if isinstance(default, int):
        return "Write a whole number, e.g. 4."
    if isinstance(default, float):
        return "Write a number, e.g. 1.0 or 1e-5."
    if isinstance(default, str):
        return "Write a string; on the command line quote values that look like numbers or lists, e.g. \"'8'\"."
    if isinstance(default, (tuple, list)):
        return "Write a list, e.g. \"['a', 'b']\" or \"(224, 224)\"."
    return ""


def _set(cfg: CfgNode, full_key: str, value: Any, source: str) -> None:
    node = cfg
    parts = full_key.split(".")
    for part in parts[:-1]:
        child = node.get(part) if isinstance(node, CfgNode) else None
        if not isinstance(child, CfgNode):
            raise _unknown_key(cfg, full_key, source)
        node = child
    last = parts[-1]
    if last not in node:
        raise _unknown_key(cfg, full_key, source)
    node[last] = _coerce(value, node[last], full_key, source)


def _flatten(mapping: dict, prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in mapping.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, full + ".")
        else:
            yield full, value


def merge_cfg_from_file(cfg: CfgNode, path: str) -> CfgNode:
    """Merge a yaml file into ``cfg`` in place (every key must exist; see module docstring)."""
    try:
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f) or {}
    except FileNotFoundError as err:
        raise ConfigError(f"Config file not found: {path}. Check the path (it is relative to the current directory).") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"Config file {path} is not valid yaml: {err}") from err
    if not isinstance(loaded, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of keys, got {type(loaded).__name__}.")
    if cfg.is_frozen():
        raise ConfigError("The config is frozen; merge files before cfg.freeze().")
    for full_key, value in _flatten(loaded):
        _set(cfg, full_key, value, f"file {path}")
    return cfg


def merge_cfg_from_list(cfg: CfgNode, opts: Sequence[str]) -> CfgNode:
    """Merge ``[KEY, VALUE, KEY, VALUE, ...]`` (the trailing command-line overrides) into ``cfg`` in place."""
    if len(opts) % 2 != 0:
        raise ConfigError(
            f"Overrides must come in KEY VALUE pairs; got an odd number of items: {list(opts)}. "
            "Example: OPTIM.MAX_EPOCH 5 DATASET.NUM_SHOTS 16"
        )
    if cfg.is_frozen():
        raise ConfigError("The config is frozen; merge overrides before cfg.freeze().")
    for full_key, value in zip(opts[0::2], opts[1::2]):
        _set(cfg, full_key, value, "command-line override")
    return cfg
