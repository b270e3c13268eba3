"""Option-value conversion shared by the stages' option dataclasses (train, eval, harvest).

Each stage validates its options once, in its frozen dataclass's ``__post_init__``, and a value
may arrive as a command-line string, from a preset or from Python. These helpers turn one value
into the type the field wants, or raise :class:`~imagenet_captions.errors.OptionError` (a
``UsageError``: the CLI prints one line naming the option and exits 2), so every stage words the
same mistake the same way. They never import a heavy library: ``--help`` and the checks stay fast.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from imagenet_captions.errors import OptionError


def flag(name: str) -> str:
    """The command-line spelling of a field, so every message names the option the user typed."""
    return "--" + name.replace("_", "-")


def as_int(option: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within bounds; a float with a fraction or a bool is a mistake, not a count."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise OptionError(f"{option} must be an integer, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise OptionError(f"{option} must be an integer, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise OptionError(f"{option} must be at least {minimum}, not {number}")
    if maximum is not None and number > maximum:
        raise OptionError(f"{option} must be at most {maximum}, not {number}")
    return number


def as_float(
    option: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float in the interval; NaN and infinity would poison a run silently."""
    if isinstance(value, bool):
        raise OptionError(f"{option} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"{option} must be a number, not {value!r}") from None
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if not math.isfinite(number) or below or above:
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        span = (
            f"{left}{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}{right}"
        )
        raise OptionError(f"{option} must be in {span}, not {value!r}")
    return number


def as_choice(option: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices``; the message lists them, so the user need not look them up."""
    if value not in choices:
        raise OptionError(f"{option} must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def as_bool(option: str, value: Any) -> bool:
    """A real bool only: a string "false" from a preset file would otherwise read as true."""
    if not isinstance(value, bool):
        raise OptionError(f"{option} must be true or false, not {value!r}")
    return value


def as_text(option: str, value: Any) -> str:
    """A non-empty string (or path): an empty one would silently mean the current folder."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise OptionError(f"{option} must be a non-empty string, not {value!r}")
    return str(value)
