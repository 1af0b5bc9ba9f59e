"""Periodic schedules: `every` slots aligned to the clock, or cron expressions (UTC unless tz=)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .errors import ConfigError, ScheduleError
from .timeutil import Duration, seconds


@dataclass(frozen=True)
class Schedule:
    """When a periodic task fires: each slot once, aligned to the clock."""

    every: float | None = None
    cron: str | None = None
    tz: str = "UTC"

    @classmethod
    def parse(cls, every: Duration | None, cron: str | None, tz: str | None) -> Schedule | None:
        if every is not None and cron is not None:
            raise ConfigError("give `every` or `cron`, not both")
        if every is None and cron is None:
            if tz is not None:
                raise ConfigError("tz= only applies to a cron schedule")
            return None
        if every is not None:
            return cls(every=seconds(every, what="every"))
        assert cron is not None
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise ScheduleError(f"{cron!r} is not a valid cron expression")
        zone = tz or "UTC"
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"unknown time zone {zone!r}") from exc
        return cls(cron=cron, tz=zone)

    def latest(self, now: datetime) -> datetime:
        """The latest slot at or before `now`."""
        if self.every is not None:
            ts = math.floor(now.timestamp() / self.every) * self.every
            return datetime.fromtimestamp(ts, UTC)
        local = now.astimezone(ZoneInfo(self.tz)) + timedelta(microseconds=1)
        prev: datetime = croniter(str(self.cron), local).get_prev(datetime)
        return prev.astimezone(UTC)

    def next_after(self, now: datetime) -> datetime:
        """The first slot after `now`."""
        if self.every is not None:
            return self.latest(now) + timedelta(seconds=self.every)
        nxt: datetime = croniter(str(self.cron), now.astimezone(ZoneInfo(self.tz))).get_next(datetime)
        return nxt.astimezone(UTC)

    def describe(self) -> dict[str, Any]:
        if self.every is not None:
            return {"every": self.every}
        return {"cron": self.cron, "tz": self.tz}
