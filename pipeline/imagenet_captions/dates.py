"""The one reader of instants given on the command line (``--as-of``), the same on every Python.

``datetime.fromisoformat`` grew between Python 3.10 and 3.11 (a trailing ``Z``, basic formats like
``20240131``, fractions of any length), so the same command line meant different things, or failed,
depending on the interpreter. This module accepts one documented subset of ISO 8601 and parses it
itself, so ``build --as-of`` and ``harvest --as-of`` agree everywhere ``requires-python`` allows.
It must never return a naive datetime: every instant in the project is compared in UTC.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from imagenet_captions.errors import UsageError

#: ``YYYY-MM-DD``, optionally ``T`` (or a space) and ``HH:MM[:SS[.f…]]``, optionally ``Z`` or ``±HH:MM``.
_INSTANT = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,6}))?)?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})?)?"
)

EXAMPLES = "2024-01-31, 2024-01-31T12:00:00Z or 2024-01-31T12:00:00+02:00"


def parse_instant(value: str | None, option: str = "--as-of") -> datetime | None:
    """``value`` as an aware UTC-comparable datetime (None stays None: the option was not given).

    A date alone means its midnight, and a time without a zone means UTC, because answers and
    builds are stamped in UTC and a local-time reading would shift with the machine's zone."""
    if value is None:
        return None
    m = _INSTANT.fullmatch(value.strip())
    try:
        if m is None:
            raise ValueError("not ISO 8601")
        year, month, day = (int(part) for part in m["date"].split("-"))
        zone = timezone.utc
        if m["zone"] and m["zone"] not in "Zz":
            sign = -1 if m["zone"][0] == "-" else 1
            hours, minutes = int(m["zone"][1:3]), int(m["zone"][4:6])
            zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
        return datetime(
            year,
            month,
            day,
            int(m["hour"] or 0),
            int(m["minute"] or 0),
            int(m["second"] or 0),
            int((m["fraction"] or "0").ljust(6, "0")),
            tzinfo=zone,
        )
    except ValueError:  # no match, or a field out of range (month 13, hour 25, offset 24:00)
        raise UsageError(f"{option} wants an ISO date or time like {EXAMPLES}, not {value!r}") from None
