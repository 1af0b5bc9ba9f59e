"""What every family of the conformance suite shares: the timeline (`T0`, `at`), helpers that act
on a backend as a worker would, the tasks the suite registers, and the fixtures (`_Store`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

import pytest

from ... import transitions
from ...backends.base import Backend, JobFilter
from ...job import Job, JobState, Update
from ...mill import Mill, open_backend
from ...timeutil import Duration, seconds
from ...transitions import Outcome
from .. import DEFAULT_START, FakeClock

T0 = DEFAULT_START  # aligned to every periodic slot length the suite uses
QUEUED, SCHEDULED, RUNNING = JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING
SUCCEEDED, FAILED, CANCELLED = JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED
STORED_FIELDS = tuple(f.name for f in fields(Job) if f.name not in ("id", "unique", "_mill"))


# -- helpers -------------------------------------------------------------------------------

def at(offset: Duration = 0) -> datetime:
    """`T0` plus a duration: the suite's timeline."""
    return T0 + timedelta(seconds=seconds(offset, allow_zero=True))


def snapshot(job: Job) -> dict[str, Any]:
    """Every stored field of a job but its id."""
    return {name: getattr(job, name) for name in STORED_FIELDS}


def ids(jobs: Sequence[Job]) -> list[str]:
    return [j.id for j in jobs]


def build(mill: Mill, now: datetime, task: str = "noop", args: Sequence[Any] | None = None,
          kwargs: dict[str, Any] | None = None, **options: Any) -> Job:
    """A new job as `Mill` builds it, not yet stored."""
    return mill.build(task, args, kwargs, now=now, **options)


def put(backend: Backend, mill: Mill, now: datetime, task: str = "noop",
        args: Sequence[Any] | None = None, kwargs: dict[str, Any] | None = None,
        **options: Any) -> Job:
    """Build one job and store it at `now`."""
    return backend.enqueue([build(mill, now, task, args, kwargs, **options)], now)[0]


def claim(backend: Backend, now: datetime, queues: Sequence[str] | None = None, limit: int = 100,
          token: str = "token-1", worker: str = "worker-1", lease: Duration = 30) -> list[Job]:
    return backend.claim(queues, limit, worker, token, now + timedelta(seconds=seconds(lease)), now)


def claim_one(backend: Backend, now: datetime, token: str = "token-1", lease: Duration = 30) -> Job:
    jobs = claim(backend, now, limit=1, token=token, lease=lease)
    assert len(jobs) == 1, f"expected one job to claim, got {len(jobs)}"
    return jobs[0]


def stored(backend: Backend, job_id: str) -> Job:
    job = backend.get(job_id)
    assert job is not None, f"job {job_id} is not in the store"
    return job


def finish(backend: Backend, running: Job, outcome: Outcome, now: datetime) -> bool:
    """What a worker writes when a run ends: the transition, guarded by the claim it ran under."""
    new = transitions.finish(running, outcome, now)
    return backend.apply([Update(new, RUNNING, running.claim_token)], now)[0]


def everything(backend: Backend, **where: Any) -> list[Job]:
    return backend.query(JobFilter(**where), 10_000, None)[0]


def counts(backend: Backend) -> dict[str, dict[str, int]]:
    """`stats()` without the zero counts a backend may or may not report."""
    return {q: {s: n for s, n in per.items() if n} for q, per in backend.stats().items()
            if any(per.values())}


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in `count` threads released at once; their results, or the first error."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(10)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if errors:
        raise errors[0]
    return results


def noop(ctx: Any, *args: Any, **kwargs: Any) -> None:
    """Does nothing: the task most jobs of the suite belong to."""


def other(ctx: Any, *args: Any, **kwargs: Any) -> None:
    """Does nothing either, under another name."""


def echo(ctx: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Returns its arguments."""
    return {"args": list(args), "kwargs": kwargs}


def slow(ctx: Any) -> None:
    """A task with a timeout and an iteration limit, to see those stored."""


# -- fixtures ------------------------------------------------------------------------------

class _Store:
    """The fixtures every family uses. A subclass provides `url` (see the module docstring)."""

    def connect(self, url: str) -> Backend:
        """A connection to the store at `url`; called twice in a test, it must reach one store."""
        return open_backend(url)

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(T0)

    @pytest.fixture
    def backend(self, url: str) -> Iterator[Backend]:
        backend = self.connect(url)
        yield backend
        backend.close()

    @pytest.fixture
    def second_backend(self, url: str, backend: Backend) -> Iterator[Backend]:
        """Another connection to the same store, as another worker host would have."""
        other = self.connect(url)
        yield other
        if other is not backend:
            other.close()

    @pytest.fixture
    def mill(self, url: str, backend: Backend, clock: FakeClock) -> Mill:
        """A Mill on the test's store and clock, with tasks `noop`, `other`, `echo` and `slow`."""
        mill = Mill(url, clock=clock, backend=backend)
        mill.task(noop)
        mill.task(other)
        mill.task(echo)
        mill.task(timeout="10m", max_iterations=7, queue="slow")(slow)
        return mill

