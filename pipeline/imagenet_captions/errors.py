"""Errors that mean "the input or the command line is wrong", as opposed to a bug.

The CLI prints them as one clear line (no traceback) and exits with status 2.
"""


class UsageError(Exception):
    """A user mistake in the command line or its inputs (a missing file, a malformed release file)."""


class OptionError(UsageError, ValueError):
    """A bad option value, found where the option's dataclass validates it: the CLI's one line and
    exit 2, and a ``ValueError`` to a caller that builds the options in Python."""
