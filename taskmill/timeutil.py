"""Durations and datetimes as the contract accepts them: "250ms", "1h30m", seconds, timedelta."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import ConfigError, ScheduleError

Duration = str | int | float | timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
_MAX_SECONDS = 10 * 365 * 86400.0  # ten years: anything longer is a mistake, not a schedule


def seconds(value: Duration, *, what: str = "duration", allow_zero: bool = False,
            error: type[Exception] = ConfigError) -> float:
    """Seconds in `value`; refuses what is not a positive duration (zero only if `allow_zero`)."""
    if isinstance(value, bool):
        raise error(f"{what} must be a duration, not {value!r}")
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if not _WHOLE.match(text):
            raise error(f"{what} {value!r} is not a duration such as '250ms', '5s', '5m', '1h30m', '1d'")
        result = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    else:
        raise error(f"{what} must be a string, a number of seconds or a timedelta, not {value!r}")
    if result != result or result in (float("inf"), float("-inf")):
        raise error(f"{what} must be finite")
    if result < 0 or (result == 0 and not allow_zero):
        raise error(f"{what} must be {'zero or more' if allow_zero else 'positive'}, got {value!r}")
    if result > _MAX_SECONDS:
        raise error(f"{what} {value!r} is longer than ten years")
    return result


def delay_seconds(value: Duration, what: str = "delay") -> float:
    """A delay: zero or more seconds; a bad one is a `ScheduleError`."""
    return seconds(value, what=what, allow_zero=True, error=ScheduleError)


def aware(value: datetime, what: str = "time") -> datetime:
    """`value` in UTC; naive datetimes are refused because their zone is a guess."""
    if not isinstance(value, datetime):
        raise ScheduleError(f"{what} must be a datetime, not {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(f"{what} {value.isoformat()} is naive: give it a timezone")
    return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_ts(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def to_ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()
