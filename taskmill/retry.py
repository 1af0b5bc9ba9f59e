"""Retry policies: a count with growing backoff, or `{tries, interval}` steps applied in order."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from .errors import ConfigError
from .timeutil import seconds

DEFAULT_RETRIES = 12
BASE_DELAY = 15.0
MAX_DELAY = 3600.0
JITTER = 0.2
MAX_RETRIES = 10_000

RetrySpec = int | bool | Sequence[Any] | Mapping[str, Any] | None


def parse(spec: RetrySpec) -> dict[str, Any]:
    """The stored (JSON) form of a retry option, or `ConfigError` for a bad one.

    `12` -> {"backoff": 12}; `0`/`False`/`None` -> {"backoff": 0};
    `(1, "5m")`, `[(1, "5m"), (3, "1h")]`, `{"tries": 1, "interval": "5m"}` -> {"steps": [[1, 300.0], ...]}
    """
    if spec is None or spec is False:
        return {"backoff": 0}
    if spec is True:
        raise ConfigError("retry=True is ambiguous: give a number of retries or (tries, interval) steps")
    if isinstance(spec, int):
        if not 0 <= spec <= MAX_RETRIES:
            raise ConfigError(f"retry must be between 0 and {MAX_RETRIES}, got {spec}")
        return {"backoff": spec}
    if isinstance(spec, Mapping) or (isinstance(spec, Sequence) and not isinstance(spec, str)
                                      and len(spec) == 2 and isinstance(spec[0], int)
                                      and isinstance(spec[1], str | int | float | timedelta)):
        spec = [spec]
    if isinstance(spec, str) or not isinstance(spec, Sequence) or not spec:
        raise ConfigError(f"retry {spec!r} is not a number of retries nor a list of (tries, interval)")
    steps = [_step(item) for item in spec]
    if sum(t for t, _ in steps) > MAX_RETRIES:
        raise ConfigError(f"retry steps add up to more than {MAX_RETRIES} tries")
    return {"steps": [[t, i] for t, i in steps]}


def _step(item: Any) -> tuple[int, float]:
    if isinstance(item, Mapping):
        if set(item) != {"tries", "interval"}:
            raise ConfigError(f"a retry step needs exactly 'tries' and 'interval', got {dict(item)!r}")
        tries, interval = item["tries"], item["interval"]
    elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
        tries, interval = item
    else:
        raise ConfigError(f"a retry step is (tries, interval), got {item!r}")
    if isinstance(tries, bool) or not isinstance(tries, int) or tries < 1:
        raise ConfigError(f"a retry step's tries must be a whole number of 1 or more, got {tries!r}")
    return tries, seconds(interval, what="retry interval")


def max_attempts(policy: Mapping[str, Any]) -> int:
    """1 for the first attempt, plus the retries the policy allows."""
    if "steps" in policy:
        return 1 + sum(int(t) for t, _ in policy["steps"])
    return 1 + int(policy.get("backoff", 0))


def delay(policy: Mapping[str, Any], retry_number: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry `retry_number` (1 for the first retry)."""
    if "steps" in policy:
        seen = 0
        interval = 0.0
        for tries, interval in policy["steps"]:
            seen += int(tries)
            if retry_number <= seen:
                return float(interval)
        return float(interval)
    base = min(BASE_DELAY * 2 ** min(retry_number - 1, 30), MAX_DELAY)
    return float(base * (1 + (rng or random).uniform(-JITTER, JITTER)))
