"""Plugins: a method (or dataset) in a file of its own, outside the package, registered by importing it.

``train.py --plugin path/to/my_method.py`` (repeatable) and the ``PROMPTKD_PLUGINS`` environment variable (paths
or module names separated by ``os.pathsep``, so scripts and tools that start ``train.py`` pass them on) import
each plugin once before the config is built. A plugin file registers its trainer with
``@TRAINER_REGISTRY.register()`` and declares its config node on the class (``config_defaults``), so nothing else in
the repository changes. A module name (``my_package.my_method``) is imported the normal way.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from .errors import UserError

PLUGINS_ENV = "PROMPTKD_PLUGINS"

_LOADED: dict[str, ModuleType] = {}  # resolved path or module name -> module


class PluginError(UserError, ImportError):
    """A plugin file or module that cannot be found or imported."""


def plugins_from_env() -> list[str]:
    """The plugins named by ``PROMPTKD_PLUGINS`` (empty entries ignored)."""
    return [entry for entry in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if entry.strip()]


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or (os.altsep is not None and os.altsep in spec)


def load_plugin(spec: str) -> ModuleType:
    """Import one plugin (a ``.py`` file path or a module name) once; importing it registers what it defines."""
    if not _is_path(spec):
        if spec not in _LOADED:
            try:
                _LOADED[spec] = importlib.import_module(spec)
            except ModuleNotFoundError as err:
                raise PluginError(
                    f"plugin module '{spec}' not found ({err}). Pass a file path (--plugin path/to/{spec}.py) or put "
                    "its folder on PYTHONPATH."
                ) from err
        return _LOADED[spec]
    path = Path(spec).expanduser().resolve()
    key = str(path)
    if key in _LOADED:
        return _LOADED[key]
    if not path.is_file():
        raise PluginError(f"plugin file not found: {spec} (resolved to {path}); check the --plugin / {PLUGINS_ENV} path")
    # a unique module name per file, so two plugins named my_method.py in different folders do not collide
    name = f"promptkd_plugin_{path.stem}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"cannot import the plugin file {path}: not a Python source file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as err:
        del sys.modules[name]
        raise PluginError(f"plugin file {path} has a syntax error at line {err.lineno}: {err.msg}") from err
    except BaseException:
        del sys.modules[name]
        raise
    _LOADED[key] = module
    return module


def load_plugins(specs: Iterable[str] = ()) -> list[ModuleType]:
    """Import the plugins of ``PROMPTKD_PLUGINS`` and then ``specs`` (each once, in order)."""
    return [load_plugin(spec) for spec in [*plugins_from_env(), *specs]]


__all__ = ["PLUGINS_ENV", "PluginError", "load_plugin", "load_plugins", "plugins_from_env"]
