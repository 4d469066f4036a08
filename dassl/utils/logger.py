"""The log of one run: ``<output_dir>/log.txt`` gets every line of the run, the console only what it asked for.

A run opens a :class:`RunLog` for its duration (``with RunLog(cfg.OUTPUT_DIR, console="normal"):``). While it is
open, ``sys.stdout`` and ``sys.stderr`` are tees, so the ``print(...)`` calls of Dassl-style trainers still land
in log.txt (upstream parsers grep its ``=> result`` / ``* accuracy: X%`` block), and so do warnings, error
messages and, when the run fails, its traceback. On exit the previous streams come back, even after an error,
so the next run's lines never reach this run's file. The file is line-buffered: a run killed with SIGKILL or
SIGTERM keeps every line printed before.

Console levels (the file always gets everything):

* ``verbose``: every line, as upstream;
* ``normal``: every ``print``, but not the ``detail`` lines (the config dump, env info, a line per batch between
  ``TRAIN.PRINT_FREQ`` steps);
* ``quiet``: only ``announce`` lines (one per epoch, the results) and stderr (warnings, errors);
* ``off``: nothing on stdout (the non-main processes of a distributed run).

Without an open run log, ``detail`` and ``announce`` simply print, as plain Dassl code would.
"""

from __future__ import annotations

import atexit
import os.path as osp
import sys
import time
import traceback
import warnings
from typing import TextIO

from .tools import mkdir_if_missing

__all__ = [
    "CONSOLE_LEVELS",
    "RunLog",
    "active_run_log",
    "announce",
    "console_stream",
    "detail",
    "log_path",
    "setup_logger",
]

CONSOLE_LEVELS = ("off", "quiet", "normal", "verbose")
_ACTIVE: list[RunLog] = []  # the open run logs, innermost last


def log_path(output: str) -> str:
    """``output`` itself for a ``.txt``/``.log`` path, else ``<output>/log.txt``; an existing file is never
    overwritten: a ``-YYYY-MM-DD-HH-MM-SS`` suffix is added, as Dassl does."""
    fpath = output if output.endswith((".txt", ".log")) else osp.join(output, "log.txt")
    if osp.exists(fpath):
        fpath += time.strftime("-%Y-%m-%d-%H-%M-%S")
    return fpath


class _Tee:
    """A text stream that writes to the log file and, when ``to_console``, to the stream it replaced."""

    def __init__(self, console: TextIO, file: TextIO | None, to_console: bool) -> None:
        self.console, self.file, self.to_console = console, file, to_console

    def write(self, msg: str) -> int:
        if self.file is not None and not self.file.closed:
            self.file.write(msg)  # the file first: what the console has shown is already on disk
        if self.to_console:
            self.console.write(msg)
        return len(msg)

    def flush(self) -> None:
        self.console.flush()
        if self.file is not None and not self.file.closed:
            self.file.flush()

    def isatty(self) -> bool:
        return False  # no progress bar or colour codes into log.txt (bars write to console_stream())

    @property
    def encoding(self) -> str:
        return getattr(self.console, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.console.fileno()


class RunLog:
    """Tee stdout/stderr into ``output`` (a ``.txt``/``.log`` file or a folder, then ``<folder>/log.txt``) while
    the ``with`` block runs, showing on the console what ``console`` (one of ``CONSOLE_LEVELS``) asks for.

    ``output=None`` logs to no file (only the console filter applies).
    """

    def __init__(self, output: str | None, console: str = "normal") -> None:
        if console not in CONSOLE_LEVELS:
            raise ValueError(f"console level must be one of {CONSOLE_LEVELS}, got '{console}'")
        self.console_level = console
        self.path = log_path(output) if output else None
        self.file: TextIO | None = None
        self._saved: tuple[TextIO, TextIO] | None = None
        self._showwarning = None

    @property
    def level(self) -> int:
        return CONSOLE_LEVELS.index(self.console_level)

    def __enter__(self) -> RunLog:
        if self.path is not None:
            mkdir_if_missing(osp.dirname(osp.abspath(self.path)))
            self.file = open(self.path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 (closed in __exit__)
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(self._saved[0], self.file, to_console=self.level >= CONSOLE_LEVELS.index("normal"))
        sys.stderr = _Tee(self._saved[1], self.file, to_console=True)
        self._showwarning, warnings.showwarning = warnings.showwarning, self._show_warning
        _ACTIVE.append(self)
        return self

    def _show_warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        """Warnings of the run: into log.txt, then to whoever handled them before (the console's stderr, or a
        recorder such as ``warnings.catch_warnings(record=True)`` / ``pytest.warns``)."""
        self.write_file(warnings.formatwarning(message, category, filename, lineno, line))
        console = file or (self._saved[1] if self._saved is not None else None)  # not the tee: no second copy
        (self._showwarning or warnings._showwarning_orig)(message, category, filename, lineno, console, line)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and not _is_clean_exit(exc):
                self.write_file(_failure_text(exc_type, exc, tb))
        finally:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
            if self._saved is not None:
                sys.stdout, sys.stderr = self._saved
                warnings.showwarning = self._showwarning
                self._saved = None
            if self.file is not None:
                self.file.close()

    # -------------------------------------------------------------------------------------------- writing
    def write_file(self, text: str) -> None:
        if self.file is not None and not self.file.closed:
            self.file.write(text)

    def write_console(self, text: str) -> None:
        if self._saved is not None:
            self._saved[0].write(text)
            self._saved[0].flush()

    def emit(self, text: str, min_level: str) -> None:
        """``text`` into the file, and onto the console when the level is at least ``min_level``."""
        self.write_file(text)
        if self.level >= CONSOLE_LEVELS.index(min_level):
            self.write_console(text)

    def console(self) -> TextIO:
        """The stderr under the tee (for progress bars, which must not reach the file)."""
        return self._saved[1] if self._saved is not None else sys.stderr


def _is_clean_exit(exc: BaseException | None) -> bool:
    return isinstance(exc, SystemExit) and exc.code in (None, 0)


def _failure_text(exc_type, exc, tb) -> str:
    """What log.txt keeps of a failed run: the message as the console shows it, then the traceback."""
    from .errors import UserError

    lines = []
    if isinstance(exc, UserError):
        lines.append(f"\nError: {exc}\n")
    lines.append("\n" + "".join(traceback.format_exception(exc_type, exc, tb)))
    return "".join(lines)


def active_run_log() -> RunLog | None:
    """The innermost open :class:`RunLog`, or None outside a run."""
    return _ACTIVE[-1] if _ACTIVE else None


def _join(args: tuple) -> str:
    return " ".join(str(a) for a in args) + "\n"


def detail(*args) -> None:
    """A line for log.txt that the console shows only at ``verbose`` (config dumps, per-batch lines)."""
    run_log = active_run_log()
    if run_log is None:
        print(*args)
    else:
        run_log.emit(_join(args), "verbose")


def announce(*args) -> None:
    """A line the console shows even at ``quiet`` (one per epoch, the results); log.txt gets it too."""
    run_log = active_run_log()
    if run_log is None:
        print(*args)
    else:
        run_log.emit(_join(args), "quiet")


def console_stream() -> TextIO:
    """Where progress bars go: the console's stderr, never log.txt."""
    run_log = active_run_log()
    return run_log.console() if run_log is not None else sys.stderr


_PROCESS_LOG: list[RunLog] = []  # the run log that setup_logger opened, if any


def setup_logger(output: str | None = None) -> str | None:
    """Dassl's call for upstream-style scripts: a :class:`RunLog` into ``output`` that stays open until the next
    call or the end of the process. The toolkit's own entry points never call it: a run owns its
    :class:`RunLog` (``with RunLog(...)``), which gives the console back when the run ends.

    Returns the path of the log file.
    """
    if output is None:
        return None
    while _PROCESS_LOG:  # several runs in one process: close the previous log first
        _PROCESS_LOG.pop().__exit__(None, None, None)
    run_log = RunLog(output, console="verbose")
    run_log.__enter__()
    _PROCESS_LOG.append(run_log)
    atexit.register(_close_process_log, run_log)
    return run_log.path


def _close_process_log(run_log: RunLog) -> None:
    if run_log in _PROCESS_LOG:
        _PROCESS_LOG.remove(run_log)
        run_log.__exit__(None, None, None)
