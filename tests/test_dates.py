"""``--as-of``: one parser, the same answer on every Python the project supports (3.10 has no ``Z``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from imagenet_captions import dates
from imagenet_captions.dates import parse_instant
from imagenet_captions.errors import UsageError

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31", datetime(2024, 1, 31, tzinfo=UTC)),
        ("2024-01-31T12:00", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31T12:00:05", datetime(2024, 1, 31, 12, 0, 5, tzinfo=UTC)),
        ("2024-01-31 12:00:05", datetime(2024, 1, 31, 12, 0, 5, tzinfo=UTC)),
        ("2024-01-31T12:00:00Z", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31t12:00:00z", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31T12:00Z", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31T12:00:00.5Z", datetime(2024, 1, 31, 12, 0, 0, 500_000, tzinfo=UTC)),
        ("2024-01-31T12:00:00.123456Z", datetime(2024, 1, 31, 12, 0, 0, 123_456, tzinfo=UTC)),
        ("2024-01-31T12:00:00+00:00", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31T14:00:00+02:00", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31T06:30:00-05:30", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        (" 2024-01-31 ", datetime(2024, 1, 31, tzinfo=UTC)),
    ],
)
def test_accepted_forms(text: str, expected: datetime) -> None:
    got = parse_instant(text)
    assert got == expected
    assert got.tzinfo is not None and got.utcoffset() is not None  # never naive


def test_a_naive_time_means_utc_not_the_machines_zone() -> None:
    assert parse_instant("2024-06-01T00:00:00").utcoffset() == timedelta(0)


def test_none_stays_none() -> None:
    assert parse_instant(None) is None


def test_the_result_does_not_depend_on_fromisoformat(monkeypatch) -> None:
    """Python 3.10's fromisoformat rejects a trailing Z: the parser must not lean on it."""

    class NoIso(datetime):
        @classmethod
        def fromisoformat(cls, value: str) -> datetime:  # noqa: ARG003
            raise AssertionError("fromisoformat differs between Pythons; not used")

    monkeypatch.setattr(dates, "datetime", NoIso)
    assert parse_instant("2024-01-31T12:00:00Z") == datetime(2024, 1, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "",
        "2024-13-01",
        "2024-02-30",
        "2024-01-31T25:00",
        "2024-01-31T12",
        "2024-01-31Z",
        "20240131",
        "2024-01-31T12:00:00+24:00",
        "2024-01-31T12:00:00.1234567",
        "2024-1-31",
        "1706702400",
    ],
)
def test_rejected_forms_name_the_option_and_the_value(text: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_instant(text, "--as-of")
    message = str(e.value)
    assert message.startswith("--as-of ") and repr(text) in message and "\n" not in message


def test_the_option_name_is_the_callers() -> None:
    with pytest.raises(UsageError, match=r"^--since wants an ISO date"):
        parse_instant("soon", option="--since")


def test_harvest_accepts_z_and_rejects_nonsense(tmp_path, capsys) -> None:
    from imagenet_captions.cli import main

    args = ["harvest", "--out", str(tmp_path / "h"), "--export", str(tmp_path / "x.json")]
    assert main([*args, "--as-of", "2024-01-31T00:00:00Z"]) == 2
    err = capsys.readouterr().err
    assert "no response store" in err and "--as-of" not in err
    assert main([*args, "--as-of", "2024-31-01"]) == 2
    err = capsys.readouterr().err
    assert "--as-of" in err and "'2024-31-01'" in err
