"""The toolkit as one installable package, ``promptkd``, that leaves the name ``datasets`` to Hugging Face.

The repository keeps the CoOp layout: ``dassl/``, ``trainers/``, ``datasets/``, ``tools/`` and ``train.py`` at its
root, whose modules import each other by those top-level names (``from dassl.utils import ...``), as Dassl-style
code does. Installed (``pip install .``), the same folders live inside this package (``promptkd.dassl``,
``promptkd.datasets``, ...), and importing ``promptkd`` makes the top-level names ``dassl``, ``trainers``,
``tools`` and ``train`` resolve to them, so no import line had to change. ``datasets`` is the exception: it stays
whatever the environment has (Hugging Face's), and our entry points import their datasets as
``promptkd.datasets``.

Two modes, decided once when this package is imported:

* **checkout** (``python train.py`` from the repository root, pytest, tools run as scripts): the repository root
  is on ``sys.path``, the top-level names are the real modules and ``promptkd.<name>`` is an alias of them;
* **package** (installed, or an editable install used from another folder): ``promptkd.<name>`` are the real
  modules and the top-level ``dassl``/``trainers``/``tools``/``train`` are aliases of them.

Either way one module object exists per file, so the registries hold each trainer and dataset once.
``import promptkd.datasets, promptkd.trainers`` registers them (what ``import datasets, trainers`` does in the
repository).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

__all__ = ["MODE", "PACKAGES"]

PACKAGES = ("dassl", "trainers", "datasets", "tools", "train")  # the toolkit's top-level folders and module
_ROOT = Path(__file__).resolve().parent.parent  # the repository root in a checkout, site-packages when installed


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import ``<prefix>[.rest]`` as the already importable ``<target>[.rest]`` (the same module object)."""

    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases

    def _target(self, fullname: str) -> str | None:
        for prefix, target in self.aliases.items():
            if fullname == prefix or fullname.startswith(prefix + "."):
                return target + fullname[len(prefix) :]
        return None

    def find_spec(self, fullname, path=None, target=None):
        if self._target(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(self._target(spec.name))

    def exec_module(self, module) -> None:
        """Nothing to run: the target module was executed under its own name."""


def _checkout_on_path() -> bool:
    """True when the top-level ``dassl`` found on ``sys.path`` is this checkout's own."""
    spec = importlib.machinery.PathFinder.find_spec("dassl")
    origin = spec.origin if spec is not None else None
    return origin is not None and Path(origin).resolve().parent == (_ROOT / "dassl").resolve()


if _checkout_on_path():
    MODE = "checkout"
    _aliases = {f"{__name__}.{name}": name for name in PACKAGES}
else:
    MODE = "package"
    if (_ROOT / "train.py").is_file() and (_ROOT / "dassl").is_dir():  # an editable install, used elsewhere
        __path__.append(str(_ROOT))  # noqa: F821 (the package's own search path)
    _aliases = {name: f"{__name__}.{name}" for name in PACKAGES if name != "datasets"}

if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder(_aliases))
