"""Running the run scripts fast in tests: bash runs for real, ``PYTHON`` is a stand-in that records the
``train.py`` command line (any other python call, e.g. reading MAX_EPOCH from a yaml, runs normally), and the test
replays that command line in its own process, so the interpreter start-up is not paid per script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import train
from tests.conftest import REPO_ROOT

RECORDER = """#!/bin/bash
# Stands in for python: records the argv of `python train.py ...` (NUL-separated); runs anything else.
if [ "$1" = train.py ]; then shift; printf '%s\\0' "$@" > "${RECORD_ARGV}"; exit 0; fi
exec "REAL_PYTHON" "$@"
"""
# Script settings from the environment that a test sets explicitly or not at all
SCRIPT_ENV = ("LOADEP", "SUB", "W", "XD_SOURCE", "CFG", "FORCE", "DRY_RUN", "LAUNCH")


def make_recorder(root: Path) -> Path:
    recorder = root / "python-recorder"
    recorder.write_text(RECORDER.replace("REAL_PYTHON", sys.executable))
    recorder.chmod(0o755)
    return recorder


def script(assets: dict, output: Path, *args: str, python: str | None = None, **env: str) -> tuple[str, list[str]]:
    """Run ``bash <args>`` on ``assets`` (``data``, ``recorder``); return its stdout and the recorded train.py argv
    (empty with a real interpreter)."""
    record = output / "argv.bin"
    record.unlink(missing_ok=True)
    environment = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    environment.update(DATA=str(assets["data"]), OUTPUT=str(output), RECORD_ARGV=str(record),
                       PYTHON=python or str(assets["recorder"]), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", **env)  # fmt: skip
    output.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["bash", *args], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "+ " in proc.stdout and "train.py" in proc.stdout  # the script prints what it runs
    argv = record.read_bytes().decode().split("\0")[:-1] if record.exists() else []
    return proc.stdout, argv


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def replay(argv: list[str], monkeypatch):
    """Run a recorded train.py command line in this process, from the repository root as the scripts do."""
    monkeypatch.chdir(REPO_ROOT)
    return train.run(train.build_parser().parse_args(argv))
