"""Exception types. Every user-facing error derives from :class:`PpevalError`.

The command line turns a ``PpevalError`` into a message and an exit status without a
traceback: :class:`ConfigError` (and usage errors) exit 2, :class:`DataError` exits 1.
"""

from __future__ import annotations


class PpevalError(Exception):
    """Base class of errors caused by the user's input (not by a bug in ppeval)."""

    exit_status = 2


class ConfigError(PpevalError):
    """The configuration file or the arguments are wrong."""

    exit_status = 2


class DataError(PpevalError):
    """The data cannot be used: names the file, row and column where possible."""

    exit_status = 1

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = problems or []


class NotYetAvailableError(PpevalError):
    """A stage that this version of ppeval does not provide yet."""

    exit_status = 2


class ConvergenceError(PpevalError):
    """A model could not be fitted (e.g. no events of a kind in one arm: the ratio is not finite)."""

    exit_status = 1
