"""Tee stdout into ``<output_dir>/log.txt`` so that every print of a run is kept (the parsers read it)."""

from __future__ import annotations

import os.path as osp
import sys
import time

from .tools import mkdir_if_missing

__all__ = ["Logger", "setup_logger"]


class Logger:
    """Write to the console and to a file at once.

    Progress bars write ``\\r`` updates to stderr, which is not teed, so the log file stays readable.
    """

    def __init__(self, fpath: str | None = None) -> None:
        self.console = sys.stdout
        self.file = None
        if fpath is not None:
            mkdir_if_missing(osp.dirname(osp.abspath(fpath)))
            self.file = open(fpath, "w", encoding="utf-8")  # noqa: SIM115 (lives as long as the tee)

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *args) -> None:
        self.close()

    def write(self, msg: str) -> None:
        self.console.write(msg)
        if self.file is not None:
            self.file.write(msg)

    def flush(self) -> None:
        self.console.flush()
        if self.file is not None:
            self.file.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()


def setup_logger(output: str | None = None) -> str | None:
    """Tee stdout to ``output`` (a ``.txt``/``.log`` file or a directory, then ``<dir>/log.txt``).

    An existing log is never overwritten: a ``-YYYY-MM-DD-HH-MM-SS`` suffix is added, as Dassl does.
    Returns the path of the log file.
    """
    if output is None:
        return None
    if output.endswith(".txt") or output.endswith(".log"):
        fpath = output
    else:
        fpath = osp.join(output, "log.txt")
    if osp.exists(fpath):
        fpath += time.strftime("-%Y-%m-%d-%H-%M-%S")
    # Undo a previous tee (several runs in one process, e.g. tests or sweeps) before adding a new one.
    previous = sys.stdout
    if isinstance(previous, Logger):
        previous.close()
        sys.stdout = previous.console
    sys.stdout = Logger(fpath)
    return fpath
