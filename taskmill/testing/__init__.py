"""Helpers for testing code that uses taskmill: a clock you move by hand, and a worker run to idle.

    clock = FakeClock()
    mill = Mill("memory://", clock=clock)
    ...
    job = send_report.enqueue(user=42)
    drain(mill)                      # runs every ready job, then returns
    clock.advance("1h")              # a retry an hour away is due now
    drain(mill)

The backend conformance suite lives in `taskmill.testing.conformance` (it needs pytest).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..backends.base import JobFilter
from ..job import JobState
from ..timeutil import Duration, aware, seconds

if TYPE_CHECKING:
    from ..mill import Mill

DEFAULT_START = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told: pass it as `Mill(url, clock=clock)`.

    Starts at `start` (by default 2030-01-01 00:00 UTC, so tests don't depend on the day they run).
    Safe to read and move from several threads.
    """

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._now = aware(start, "start")
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def now(self) -> datetime:
        return self()

    def advance(self, by: Duration) -> datetime:
        """Move forward by a duration ("250ms", "1h30m", seconds or a timedelta); returns the new
        time. Moving backwards is refused: real clocks the store relies on don't."""
        step = timedelta(seconds=seconds(by, what="advance", allow_zero=True))
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to `when` (timezone-aware, not before the current time)."""
        when = aware(when, "when")
        with self._lock:
            if when < self._now:
                raise ValueError(f"the clock cannot go back from {self._now.isoformat()} to "
                                 f"{when.isoformat()}")
            self._now = when
            return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self().isoformat()})"


def drain(mill: Mill, queues: str | list[str] = "*", concurrency: int = 1) -> dict[str, int]:
    """Run a worker of `mill` in burst mode: every ready job (and each due periodic slot, and
    retries that are due by the mill's clock), until none is ready. Jobs scheduled later stay
    scheduled: advance the clock and drain again. Returns the worker's counts (succeeded, failed,
    cancelled, retried, lost)."""
    total: dict[str, int] = {}
    for _ in range(100):
        worker = mill.worker(queues=queues, concurrency=concurrency)
        worker.run(burst=True)
        for key, n in worker.counts.items():
            total[key] = total.get(key, 0) + n
        # A burst can end while its own maintenance thread is still promoting or firing a job
        # (a store with row locks lets the two overlap): look again before calling it done.
        if not _ready(mill, worker.queues):
            break
    return total


def _ready(mill: Mill, queues: list[str] | None) -> bool:
    """Whether a job of `queues` (None: all) could be claimed now, or a scheduled one is due."""
    backend = mill.backend
    due = backend.next_due()
    if due is not None and due <= mill.now():
        return True
    paused = backend.paused()
    served: list[str | None] = list(queues) if queues is not None else [None]
    for queue in served:
        if queue in paused:
            continue
        jobs, _ = backend.query(JobFilter(states=(JobState.QUEUED,), queue=queue), 100, None)
        if any(job.queue not in paused for job in jobs):
            return True
    return False


__all__ = ["DEFAULT_START", "FakeClock", "drain"]
