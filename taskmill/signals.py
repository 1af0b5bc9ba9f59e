"""What task code returns or raises to steer its job: signals, not errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .timeutil import Duration


@dataclass(frozen=True)
class Continue:
    """Returned by a run: run another iteration (after `delay`), with `state` as `ctx.state`."""

    state: Any = None
    delay: Duration = 0


class Cancelled(Exception):
    """Raised by task code that saw `ctx.cancelled`: the run stops, the job ends cancelled."""


class Retry(Exception):
    """Raised by task code to ask for another try (after `delay`); it uses up an attempt."""

    def __init__(self, delay: Duration | None = None, reason: str | None = None) -> None:
        super().__init__(reason or "the task asked to be retried")
        self.delay = delay
