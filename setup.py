"""Packaging hook (the metadata is in pyproject.toml): everything is installed inside one package, ``promptkd``.

The repository folders ``dassl/``, ``trainers/``, ``datasets/`` and ``tools/`` become ``promptkd.dassl`` etc.
(with every subpackage found in them), and the wheel also carries ``train.py`` and ``configs/``
(``promptkd/train.py``, ``promptkd/configs/``). ``promptkd/__init__.py`` explains how the code still imports
them by their top-level names.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
FOLDERS = ("dassl", "trainers", "datasets", "tools")
SUBPACKAGES = find_packages(where=str(ROOT), include=[f"{folder}*" for folder in FOLDERS])


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "promptkd"
        shutil.copy2(ROOT / "train.py", target / "train.py")
        shutil.copytree(ROOT / "configs", target / "configs", dirs_exist_ok=True)


setup(
    packages=["promptkd", *(f"promptkd.{name}" for name in SUBPACKAGES)],
    package_dir={"promptkd": "promptkd", **{f"promptkd.{folder}": folder for folder in FOLDERS}},
    cmdclass={"build_py": BuildPy},
)
