"""Fault injection for the kill-and-restart tests: with ``PROMPTKD_FAULT=<point>:<n>`` the process kills itself
(SIGKILL, no clean-up) the n-th time it passes ``fault_point("<point>")``.

Points: ``checkpoint-write`` (a checkpoint's temp file is written, not yet renamed), ``checkpoint-saved`` (after
each checkpoint file), ``evaluation-recorded`` (an evaluation is in the record, results.json not yet rewritten),
``batch`` (after each training step). Unset, a point costs two environment lookups.
"""

from __future__ import annotations

import os
import signal

__all__ = ["fault_point", "FAULT_ENV", "TRACE_ENV"]

FAULT_ENV = "PROMPTKD_FAULT"
TRACE_ENV = "PROMPTKD_FAULT_TRACE"  # a file that receives the name of every point passed (to count them)
_passes: dict[str, int] = {}


def fault_point(name: str) -> None:
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, count = spec.rpartition(":")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)
