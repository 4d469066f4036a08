"""The toolkit's error types: what a user can fix is a ``UserError`` (a message, exit code 2), not a traceback.

Entry points (``train.py``, ``tools/*``) catch ``UserError`` and print ``Error: <message>`` to stderr and the run's
log; ``PROMPTKD_DEBUG=1`` re-raises so the traceback is shown. Each error says what was read, what was expected
and the command or config key that fixes it.
"""

from __future__ import annotations

__all__ = ["UserError", "NonFiniteError", "RunStateError", "EXIT_USER_ERROR", "EXIT_NON_FINITE"]

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
