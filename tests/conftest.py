"""Shared fixtures: where the golden fixtures live, and a fresh registry state per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _golden_root() -> Path:
    env = os.environ.get("PROMPTKD_GOLDEN")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The golden fixtures made by the original code (``../shared/golden`` or ``$PROMPTKD_GOLDEN``).

    In CI (``CI`` set) a missing folder is a failure, not a skip, so parity can never silently stop being tested.
    """
    root = _golden_root()
    if not (root / "README.md").is_file():
        message = f"golden fixtures not found at {root} (set PROMPTKD_GOLDEN)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
