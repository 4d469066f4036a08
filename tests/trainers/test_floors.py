"""The floors of docs/design.md#floors: a method file never imports another method file, the engine never imports
trainers or datasets, and shared modules register no trainer."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

TRAINERS = REPO_ROOT / "trainers"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of what ``path`` imports (relative imports resolved against its package)."""
    package = path.parent.relative_to(REPO_ROOT).as_posix().replace("/", ".")
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            if node.module is None:  # from . import x
                names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def registers_a_trainer(path: Path) -> bool:
    """Whether a class in ``path`` is decorated with ``@TRAINER_REGISTRY.register()``."""
    return any(
        isinstance(node, ast.ClassDef) and any("TRAINER_REGISTRY.register" in ast.unparse(d) for d in node.decorator_list)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
    )


def method_files() -> list[Path]:
    return sorted(p for p in TRAINERS.glob("*.py") if registers_a_trainer(p))


def test_the_method_files_are_the_registered_trainers():
    names = {p.stem for p in method_files()}
    assert {"coop", "kgcoop", "prograd", "promptkd", "promptsrc", "ivlp", "zsclip"} <= names
    assert not names & {"base", "prompting", "prompt_models", "teacher", "templates", "config", "backbone"}


def test_a_method_file_never_imports_another_method_file():
    methods = {f"trainers.{p.stem}" for p in method_files()}
    crossing = {
        p.name: sorted(imported_modules(p) & (methods - {f"trainers.{p.stem}"})) for p in method_files()
    }
    assert {name: found for name, found in crossing.items() if found} == {}


def test_the_engine_imports_neither_trainers_nor_datasets():
    offenders = {
        p.relative_to(REPO_ROOT).as_posix(): sorted(m for m in imported_modules(p) if m.split(".")[0] in ("trainers", "datasets"))
        for p in (REPO_ROOT / "dassl").rglob("*.py")
    }
    assert {file: found for file, found in offenders.items() if found} == {}
