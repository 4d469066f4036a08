"""The toolkit's error types: what a user can fix is a ``UserError`` (a message, exit code 2), not a traceback.

Entry points (``train.py``, ``tools/*``) catch ``UserError`` and print ``Error: <message>`` to stderr and the run's
log; ``PROMPTKD_DEBUG=1`` re-raises so the traceback is shown. Each error says what was read, what was expected
and the command or config key that fixes it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = [
    "UserError",
    "NonFiniteError",
    "RunStateError",
    "EXIT_USER_ERROR",
    "EXIT_NON_FINITE",
    "DEBUG_ENV_VAR",
    "debug_enabled",
    "run_entry_point",
]

EXIT_USER_ERROR = 2
EXIT_NON_FINITE = 3


class UserError(Exception):
    """Bad input or a bad invocation: the message names the file or key and the fix."""

    exit_code = EXIT_USER_ERROR

    def __str__(self) -> str:  # subclasses of KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class RunStateError(UserError):
    """The output folder holds a run that cannot be continued as asked (other config, locked, unfinished)."""


class NonFiniteError(UserError, FloatingPointError):
    """Training produced a non-finite loss or parameter; the run stopped before saving it."""

    exit_code = EXIT_NON_FINITE


DEBUG_ENV_VAR = "PROMPTKD_DEBUG"


def debug_enabled() -> bool:
    """``PROMPTKD_DEBUG`` set to anything but ``""``/``0``/``false``: show tracebacks instead of messages."""
    return os.environ.get(DEBUG_ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


def run_entry_point(main: Callable[[], int | None], debug: bool = False) -> int:
    """Run an entry point's body; a ``UserError`` becomes ``Error: <message>`` on stderr and its exit code.

    Anything else propagates with its traceback (a bug, not a user error). With ``PROMPTKD_DEBUG=1`` user errors
    propagate too, so the traceback shows where they were raised.
    """
    try:
        return main() or 0
    except UserError as err:
        if debug or debug_enabled():
            raise
        print(f"\nError: {err}", file=sys.stderr)
        return err.exit_code
