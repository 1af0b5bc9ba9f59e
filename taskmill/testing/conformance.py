"""The backend conformance suite: one body of tests that every store passes, unchanged.

To run it on a backend, subclass `BackendConformance` in a test module and give it a fixture `url`
that returns the URL of a fresh, empty store of that backend, in its own namespace (a temp file, a
PostgreSQL schema, a Redis key prefix), so tests can run in parallel:

    from taskmill.testing.conformance import BackendConformance

    class TestRedisConformance(BackendConformance):
        @pytest.fixture
        def url(self, redis_url: str) -> str:
            return redis_url

That is the whole contract. Override `connect(url)` only if opening one URL twice does not reach
one store (memory:// does not: each open is a new, private store).

The suite is split by operation family, one class each (`EnqueueConformance`, `ClaimConformance`,
`FinishConformance`, `LeaseConformance`, `InspectionConformance`, `OperatorConformance`,
`SchedulingConformance`, `PeriodicConformance`, `PayloadConformance`, `LifecycleConformance`);
`BackendConformance` is all of them, and a family can be subclassed alone while a backend grows.

Beyond the docstrings of `taskmill.backends.base`, the suite holds a backend to what users
count on, among others: ids are strings, never reused, and list newest first; a page cursor
stays right while jobs come and go; times come back in UTC, to the microsecond; `expired()`
gives the oldest lease first; `get()` of a malformed id is None; and `apply()` refuses a write
from a running job that would send it back to `scheduled`/`queued` while the store holds a
cancel request the write does not carry (the worker had not seen the cancel yet), so a cancel
of a running job is never lost: the rescue ends it `cancelled` once its lease runs out.

Time never comes from the wall clock: backend methods get explicit `now` values (offsets from
`T0`), and the `Mill` runs on a `FakeClock`, so an hour's retry is tested in a millisecond. Tests
go through the `Backend` methods where the contract is the backend's, and through `Mill` (with a
few registered tasks) where it is the facade's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from .. import transitions
from ..backends.base import Backend, JobFilter, NewLog
from ..errors import InvalidTransition, JobNotFound, PayloadError, UnknownTask
from ..job import Job, JobError, JobState, Update
from ..maintenance import Maintenance
from ..mill import Mill, open_backend
from ..timeutil import Duration, seconds
from ..transitions import Continued, Failed, HandedBack, Outcome, Succeeded
from . import DEFAULT_START, FakeClock, drain

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


# -- enqueue -------------------------------------------------------------------------------

class EnqueueConformance(_Store):
    def test_enqueued_jobs_get_distinct_ids_and_start_queued_with_nothing_done(
            self, backend: Backend, mill: Mill) -> None:
        # given three new jobs
        jobs = [build(mill, at(0), args=[i]) for i in range(3)]
        # when they are enqueued together
        out = backend.enqueue(jobs, at(0))
        # then each has its own id and reads back queued, untouched
        assert len(set(ids(out))) == 3 and all(isinstance(i, str) and i for i in ids(out))
        for i, job in enumerate(out):
            got = stored(backend, job.id)
            assert (got.id, got.task, got.args, got.state) == (job.id, "noop", [i], QUEUED)
            assert (got.attempts, got.progress, got.result, got.error) == (0, 0.0, None, None)
            assert got.created_at == got.scheduled_at == at(0)

    def test_a_stored_job_reads_back_with_every_field_it_was_given(
            self, backend: Backend, mill: Mill) -> None:
        # given a parent job and a child with every option set
        parent = put(backend, mill, at(0))
        child = build(mill, at(1), "slow", queue="reports", priority=5, retry=[(2, "5m")],
                      owner="user:42", title="Export", parent=parent.id,
                      result_url="/done/{id}", return_url="/back")
        expected = snapshot(child)
        # when it is stored and read back
        job = backend.enqueue([child], at(1))[0]
        got = stored(backend, job.id)
        # then nothing was lost or changed
        assert snapshot(got) == expected
        assert (got.parent, got.max_attempts, got.timeout, got.max_iterations) == (
            parent.id, 3, 600.0, 7)

    def test_a_stored_job_is_there_for_a_new_connection_after_the_first_closed(
            self, url: str, mill: Mill) -> None:
        # given a job enqueued on a connection that is then closed (a process that exits)
        first = self.connect(url)
        job = put(first, mill, at(0), kwargs={"keep": True})
        expected = snapshot(job)
        first.close()
        # when a new connection opens the store, then the job is there as it was stored
        reopened = self.connect(url)
        try:
            assert snapshot(stored(reopened, job.id)) == expected
        finally:
            reopened.close()

    def test_times_read_back_in_utc_to_the_microsecond(self, backend: Backend, mill: Mill) -> None:
        # given a job created and scheduled at instants with microseconds
        created = at(0) + timedelta(microseconds=123457)
        job = put(backend, mill, created, at=created + timedelta(seconds=86399, microseconds=999999))
        # when it is read back
        got = stored(backend, job.id)
        # then its times are the same instants, in UTC
        assert got.created_at == created and got.scheduled_at == at(86400) + timedelta(microseconds=123456)
        assert got.created_at.utcoffset() == got.scheduled_at.utcoffset() == timedelta(0)

    def test_times_given_in_another_zone_are_stored_in_utc(
            self, url: str, backend: Backend) -> None:
        # given a mill whose clock, and the time asked for, are in UTC-05:30
        zone = timezone(timedelta(hours=-5, minutes=-30))
        mill = Mill(url, clock=lambda: at(0).astimezone(zone), backend=backend)
        mill.task(noop)
        # when a job is enqueued for an hour later
        job = mill.enqueue("noop", at=at("1h").astimezone(zone))
        # then the handle and the store hold the same instants, in UTC
        for seen in (job, stored(backend, job.id)):
            assert (seen.created_at, seen.scheduled_at) == (at(0), at("1h"))
            assert seen.created_at.utcoffset() == seen.scheduled_at.utcoffset() == timedelta(0)

    def test_the_id_of_a_deleted_job_is_never_given_to_another(
            self, backend: Backend, mill: Mill) -> None:
        # given the newest job deleted (an id someone may still hold: a page, a parent link)
        put(backend, mill, at(0))
        deleted = put(backend, mill, at(1))
        assert backend.delete(deleted.id) is True
        # when jobs are enqueued again, alone and in a batch
        alone = put(backend, mill, at(2))
        batch = backend.enqueue([build(mill, at(3), args=[n]) for n in range(3)], at(3))
        # then none of them takes its id
        assert deleted.id not in {alone.id, *ids(batch)}
        # nor after the newest jobs are pruned
        for n in range(4):
            assert finish(backend, claim_one(backend, at(4), token=f"t{n}"), Succeeded(n), at(5))
        assert backend.prune(at(6), 100) == 4
        later = backend.enqueue([build(mill, at(7)) for _ in range(2)], at(7))
        assert not {*ids(later)} & {deleted.id, alone.id, *ids(batch)}

    def test_a_job_enqueued_for_later_is_scheduled_until_its_time(
            self, backend: Backend, mill: Mill) -> None:
        # given a job enqueued to run in an hour
        job = put(backend, mill, at(0), delay="1h")
        # then it waits, scheduled for that time, and no worker can take it
        got = stored(backend, job.id)
        assert (got.state, got.scheduled_at) == (SCHEDULED, at("1h"))
        assert claim(backend, at("2h")) == []

    def test_enqueue_many_returns_the_jobs_in_the_order_given_and_lists_them_newest_first(
            self, backend: Backend, mill: Mill) -> None:
        # when five jobs are enqueued in one call
        out = backend.enqueue([build(mill, at(0), kwargs={"n": n}) for n in range(5)], at(0))
        # then they come back in the order given, and listing shows the last one first
        assert [j.kwargs["n"] for j in out] == [0, 1, 2, 3, 4]
        assert ids(everything(backend)) == ids(out)[::-1]
        # and an empty batch stores nothing
        assert backend.enqueue([], at(1)) == [] and len(everything(backend)) == 5

    def test_batches_enqueued_at_once_on_two_connections_each_get_their_own_jobs_ids(
            self, backend: Backend, second_backend: Backend, mill: Mill) -> None:
        # given four callers on two connections, each enqueuing batches of jobs tagged as theirs
        connections = [backend, second_backend]

        def enqueue(i: int) -> list[tuple[str, list[Any]]]:
            out: list[tuple[str, list[Any]]] = []
            for batch in range(5):
                jobs = [build(mill, at(0), args=[i, batch, n]) for n in range(20)]
                out.extend((j.id, j.args) for j in connections[i % 2].enqueue(jobs, at(0)))
            return out

        # when they all enqueue at once
        returned = [pair for pairs in in_threads(4, enqueue) for pair in pairs]
        # then every id returned names the job it was returned for, and all 400 are distinct
        assert len({job_id for job_id, _ in returned}) == 400
        for job_id, args in returned:
            assert stored(backend, job_id).args == args

    def test_a_batch_of_thousands_of_jobs_is_stored_whole(self, backend: Backend, mill: Mill) -> None:
        # when three thousand jobs are enqueued in one call
        jobs = backend.enqueue([build(mill, at(0), args=[n]) for n in range(3000)], at(0))
        # then each has its id and all are stored
        assert len(set(ids(jobs))) == 3000
        assert counts(backend) == {"default": {"queued": 3000}}
        assert stored(backend, jobs[2999].id).args == [2999]

    def test_enqueue_many_stores_none_of_the_jobs_when_the_store_refuses_one(
            self, backend: Backend, mill: Mill) -> None:
        # given a batch whose last job holds a value no store can write (standing in for any
        # failure in the middle of the batch)
        good = [build(mill, at(0), args=[n]) for n in range(3)]
        bad = replace(build(mill, at(0)), args=[object()])
        # when the batch is enqueued, it fails
        with pytest.raises(Exception):  # noqa: B017 - which error is the backend's choice
            backend.enqueue([*good, bad], at(0))
        # then none of it was stored
        assert everything(backend) == []
        assert counts(backend) == {}

    def test_enqueue_many_through_the_mill_stores_nothing_when_one_spec_is_invalid(
            self, mill: Mill) -> None:
        # when a batch holds one spec of an unknown task
        with pytest.raises(UnknownTask):
            mill.enqueue_many([{"task": "noop"}, {"task": "no_such_task"}, {"task": "noop"}])
        # then nothing is stored
        assert mill.jobs() == []

    def test_a_duplicate_without_unique_is_stored_as_a_second_job(self, mill: Mill) -> None:
        # when the same job is enqueued twice, not as unique
        first = mill.enqueue("noop", kwargs={"x": 1})
        second = mill.enqueue("noop", kwargs={"x": 1})
        # then there are two jobs
        assert first.id != second.id and len(mill.jobs()) == 2

    def test_a_unique_job_returns_the_pending_match_instead_of_a_second_job(
            self, mill: Mill) -> None:
        # given a unique job waiting
        first = mill.enqueue("noop", kwargs={"x": 1}, owner="u1", unique=True)
        # when the same job is enqueued again as unique
        again = mill.enqueue("noop", kwargs={"x": 1}, owner="u1", unique=True)
        reordered = mill.enqueue("noop", kwargs={"y": 2, "x": 1}, owner="u1", unique=True)
        same_again = mill.enqueue("noop", kwargs={"x": 1, "y": 2}, owner="u1", unique=True)
        # then the waiting one is returned (keyword order does not matter), and only it is stored
        assert again.id == first.id and same_again.id == reordered.id
        assert ids(mill.jobs()) == [reordered.id, first.id]

    def test_unique_jobs_differ_by_task_arguments_queue_and_owner(self, mill: Mill) -> None:
        # given a unique job
        base: dict[str, Any] = {"kwargs": {"x": 1}, "owner": "u1", "unique": True}
        first = mill.enqueue("noop", **base)
        # when jobs differing in one of task, args, kwargs, queue or owner are enqueued as unique
        variants = [
            mill.enqueue("other", **base),
            mill.enqueue("noop", args=[1], **base),
            mill.enqueue("noop", **{**base, "kwargs": {"x": 2}}),
            mill.enqueue("noop", queue="elsewhere", **base),
            mill.enqueue("noop", **{**base, "owner": "u2"}),
            mill.enqueue("noop", **{**base, "owner": None}),
        ]
        # then each is a job of its own
        assert len({first.id, *ids(variants)}) == 7

    def test_a_unique_job_does_not_match_a_running_or_finished_one(
            self, backend: Backend, mill: Mill) -> None:
        # given a unique job that a worker took
        first = mill.enqueue("noop", kwargs={"x": 1}, unique=True)
        claim_one(backend, at(0))
        # when the same unique job is enqueued, it is a new job
        second = mill.enqueue("noop", kwargs={"x": 1}, unique=True)
        assert second.id != first.id
        # and once that one is cancelled (finished), the next is new again
        mill.cancel(second.id)
        third = mill.enqueue("noop", kwargs={"x": 1}, unique=True)
        assert third.id not in (first.id, second.id)

    def test_unique_reschedule_moves_the_pending_match_to_the_new_time(
            self, mill: Mill, clock: FakeClock) -> None:
        # given a unique job scheduled in an hour
        first = mill.enqueue("noop", delay="1h", unique="reschedule")
        # when it is enqueued again for ten minutes from now
        sooner = mill.enqueue("noop", delay="10m", unique="reschedule")
        # then the same job now waits ten minutes
        assert sooner.id == first.id
        got = mill.get(first.id)
        assert got is not None and (got.state, got.scheduled_at) == (SCHEDULED, at("10m"))
        # and enqueued again for now, it is queued now; still one job
        now = mill.enqueue("noop", unique="reschedule")
        got = mill.get(first.id)
        assert now.id == first.id and got is not None
        assert (got.state, got.scheduled_at) == (QUEUED, clock())
        assert len(mill.jobs()) == 1

    def test_unique_reschedule_can_move_a_queued_job_later(
            self, backend: Backend, mill: Mill) -> None:
        # given a queued unique job
        first = mill.enqueue("noop", unique="reschedule")
        # when it is rescheduled to an hour from now
        later = mill.enqueue("noop", delay="1h", unique="reschedule")
        # then it waits and no worker takes it meanwhile
        got = mill.get(first.id)
        assert later.id == first.id and got is not None
        assert (got.state, got.scheduled_at) == (SCHEDULED, at("1h"))
        assert claim(backend, at(0)) == []

    def test_a_unique_job_repeated_within_one_batch_is_stored_once(self, mill: Mill) -> None:
        # when one batch holds the same unique job twice
        jobs = mill.enqueue_many([{"task": "noop", "kwargs": {"x": 1}, "unique": True}] * 2)
        # then both handles are the one stored job
        assert jobs[0].id == jobs[1].id and ids(mill.jobs()) == [jobs[0].id]

    def test_the_same_unique_job_enqueued_at_once_on_two_connections_is_stored_once(
            self, backend: Backend, second_backend: Backend, mill: Mill) -> None:
        # given eight callers, on two connections, about to enqueue the same unique job
        connections = [backend, second_backend]

        def enqueue(i: int) -> str:
            job = build(mill, at(0), kwargs={"report": 7}, owner="u1", unique=True)
            return connections[i % 2].enqueue([job], at(0))[0].id

        # when they all enqueue at once
        got = in_threads(8, enqueue)
        # then one job is stored, and every caller got it
        assert len(set(got)) == 1
        assert ids(everything(backend)) == [got[0]]


# -- claim ---------------------------------------------------------------------------------

class ClaimConformance(_Store):
    def test_claim_takes_the_highest_priority_first_then_first_in_first_out(
            self, backend: Backend, mill: Mill) -> None:
        # given jobs of mixed priority enqueued one after the other
        low = put(backend, mill, at(0), priority=0)
        high1 = put(backend, mill, at(1), priority=5)
        mid = put(backend, mill, at(2), priority=1)
        high2 = put(backend, mill, at(3), priority=5)
        negative = put(backend, mill, at(4), priority=-3)
        # when they are claimed one at a time
        order = [claim_one(backend, at(10), token=f"t{i}").id for i in range(5)]
        # then priority decides, and the same priority goes first in, first out
        assert order == [high1.id, high2.id, mid.id, low.id, negative.id]

    def test_claim_of_a_batch_takes_the_best_jobs(self, backend: Backend, mill: Mill) -> None:
        # given five jobs, two of them urgent
        jobs = [put(backend, mill, at(i), priority=9 if i in (1, 3) else 0) for i in range(5)]
        # when a batch of two is claimed, it is the urgent two
        got = claim(backend, at(10), limit=2)
        assert sorted(ids(got)) == sorted([jobs[1].id, jobs[3].id])

    def test_claim_prefers_the_oldest_scheduled_time_over_the_order_of_enqueue(
            self, backend: Backend, mill: Mill) -> None:
        # given a job delayed to t=10 and one enqueued later, at t=5, to run at once
        delayed = put(backend, mill, at(0), delay=10)
        prompt = put(backend, mill, at(5))
        backend.promote_due(at(10), 100)
        # when claimed one at a time, the one whose time came first goes first
        assert claim_one(backend, at(10), token="a").id == prompt.id
        assert claim_one(backend, at(10), token="b").id == delayed.id

    def test_claim_takes_at_most_limit_jobs(self, backend: Backend, mill: Mill) -> None:
        # given five queued jobs
        for n in range(5):
            put(backend, mill, at(n))
        # when claimed in batches of two, then two, two, one and none are taken
        assert claim(backend, at(10), limit=0) == []
        sizes = [len(claim(backend, at(10), limit=2, token=f"t{i}")) for i in range(4)]
        assert sizes == [2, 2, 1, 0]
        assert counts(backend) == {"default": {"running": 5}}

    def test_claim_takes_only_jobs_of_the_queues_asked_for(self, backend: Backend, mill: Mill) -> None:
        # given jobs in queues a, b and c
        jobs = {q: put(backend, mill, at(0), queue=q) for q in ("a", "b", "c")}
        # when a worker of a and c claims, then it gets those and leaves b
        got = claim(backend, at(1), queues=["a", "c"])
        assert sorted(ids(got)) == sorted([jobs["a"].id, jobs["c"].id])
        assert claim(backend, at(1), queues=["zzz"]) == []
        # and a worker of all queues gets b
        assert ids(claim(backend, at(1), queues=None)) == [jobs["b"].id]

    def test_claim_skips_a_paused_queue_until_it_is_resumed(
            self, backend: Backend, mill: Mill) -> None:
        # given a paused queue and jobs in it and in another queue
        backend.set_paused("a", True)
        in_a = put(backend, mill, at(0), queue="a")
        in_b = put(backend, mill, at(0), queue="b")
        # when workers claim, then nothing of the paused queue is taken
        assert backend.paused() == {"a"}
        assert claim(backend, at(1), queues=["a"]) == []
        assert ids(claim(backend, at(1))) == [in_b.id]
        # and once resumed, its job is taken
        backend.set_paused("a", False)
        assert backend.paused() == set()
        assert ids(claim(backend, at(2), token="t2")) == [in_a.id]

    def test_a_queue_paused_on_one_connection_is_skipped_by_claims_on_another(
            self, backend: Backend, second_backend: Backend, mill: Mill) -> None:
        # given a job in queue a, which another host pauses
        put(backend, mill, at(0), queue="a")
        second_backend.set_paused("a", True)
        # then this host's worker does not take it, until the other host resumes the queue
        assert claim(backend, at(1)) == []
        second_backend.set_paused("a", False)
        assert len(claim(backend, at(2))) == 1

    def test_a_paused_queue_is_kept_in_the_store(
            self, second_backend: Backend, mill: Mill) -> None:
        # when a queue is paused through the mill
        mill.pause_queue("reports")
        mill.pause_queue("mail")
        mill.resume_queue("mail")
        # then another connection (another host, or after a restart) sees it paused
        assert second_backend.paused() == {"reports"}
        assert mill.paused_queues() == {"reports"}

    def test_scheduled_jobs_are_not_claimed_before_they_are_promoted(
            self, backend: Backend, mill: Mill) -> None:
        # given a job for t=60, past its time but not yet promoted
        job = put(backend, mill, at(0), delay=60)
        assert claim(backend, at(120)) == []
        # when it is promoted, then it is claimed
        assert backend.promote_due(at(120), 100) == 1
        assert ids(claim(backend, at(120))) == [job.id]

    def test_claim_marks_the_job_running_under_the_claim(self, backend: Backend, mill: Mill) -> None:
        # given a queued job
        job = put(backend, mill, at(0))
        # when a worker claims it at t=5 with a 30 s lease
        got = claim_one(backend, at(5), token="tok-A")
        # then it is running, its attempt counted, under that worker's lease and token
        for seen in (got, stored(backend, job.id)):
            assert (seen.id, seen.state, seen.attempts, seen.started_at) == (job.id, RUNNING, 1, at(5))
            assert (seen.claim_token, seen.worker, seen.lease_until) == ("tok-A", "worker-1", at(35))
        # and it is not claimed again
        assert claim(backend, at(6), token="tok-B") == []

    def test_each_job_is_claimed_once_by_claimers_racing_on_two_connections(
            self, backend: Backend, second_backend: Backend, mill: Mill) -> None:
        # given sixty queued jobs and six workers on two connections
        backend.enqueue([build(mill, at(0), args=[n]) for n in range(60)], at(0))
        connections = [backend, second_backend]

        def work(i: int) -> list[str]:
            mine: list[str] = []
            while got := claim(connections[i % 2], at(1), limit=4, token=f"token-{i}"):
                mine.extend(f"{j.id}/token-{i}" for j in got)
            return mine

        # when they all claim until nothing is left
        claimed = [entry for batch in in_threads(6, work) for entry in batch]
        # then every job was claimed exactly once, by the worker whose token it holds
        assert len(claimed) == 60
        assert len({entry.split("/")[0] for entry in claimed}) == 60
        for entry in claimed:
            job_id, token = entry.split("/")
            got = stored(backend, job_id)
            assert (got.state, got.claim_token, got.attempts) == (RUNNING, token, 1)

    def test_claim_from_an_empty_store_takes_nothing(self, backend: Backend) -> None:
        # given no job, then a claim takes nothing (and does not fail)
        assert claim(backend, at(0)) == []


# -- finish: guarded writes ----------------------------------------------------------------

class FinishConformance(_Store):
    def test_a_success_written_under_the_claim_token_finishes_the_job(
            self, backend: Backend, mill: Mill) -> None:
        # given a running job
        put(backend, mill, at(0))
        running = claim_one(backend, at(1))
        # when its worker writes its success
        assert finish(backend, running, Succeeded({"rows": 3}), at(4)) is True
        # then it is succeeded, with its result, and holds no lease any more
        got = stored(backend, running.id)
        assert (got.state, got.result, got.progress, got.finished_at) == (SUCCEEDED, {"rows": 3},
                                                                           100.0, at(4))
        assert (got.claim_token, got.worker, got.lease_until) == (None, None, None)
        assert (got.attempts, got.iterations, got.started_at) == (1, 1, at(1))

    def test_an_update_under_a_stale_claim_token_is_refused_and_changes_nothing(
            self, backend: Backend, mill: Mill) -> None:
        # given a job running under token A
        put(backend, mill, at(0))
        running = claim_one(backend, at(1), token="A")
        before = snapshot(stored(backend, running.id))
        # when a write claims to hold token B, then it is refused
        impostor = replace(running, claim_token="B")
        assert finish(backend, impostor, Succeeded("forged"), at(2)) is False
        # nor is one that names no token at all
        new = transitions.finish(running, Succeeded("forged"), at(2))
        assert backend.apply([Update(new, RUNNING, None)], at(2)) == [False]
        # and the job is as it was
        assert snapshot(stored(backend, running.id)) == before

    def test_a_worker_that_lost_its_lease_cannot_overwrite_the_new_owner_result(
            self, backend: Backend, mill: Mill) -> None:
        # given a job claimed by worker A, whose lease ran out; it was rescued and taken by B
        put(backend, mill, at(0), retry=[(1, "1s")])
        by_a = claim_one(backend, at(0), token="A", lease=30)
        [expired] = backend.expired(at(31), 10)
        assert backend.apply([transitions.rescue(expired, at(31))], at(31)) == [True]
        backend.promote_due(at(40), 10)
        by_b = claim_one(backend, at(40), token="B")
        # when A finally reports, then its write is refused; B's is written
        assert finish(backend, by_a, Succeeded("from A"), at(41)) is False
        assert finish(backend, by_b, Succeeded("from B"), at(42)) is True
        got = stored(backend, by_a.id)
        assert (got.state, got.result, got.attempts) == (SUCCEEDED, "from B", 2)

    def test_an_update_computed_from_a_stale_read_is_refused_once_the_state_moved_on(
            self, backend: Backend, mill: Mill) -> None:
        # given an operator who read a queued job, and a worker that claimed it right after
        job = put(backend, mill, at(0))
        read = stored(backend, job.id)
        claim_one(backend, at(1))
        # when the operator's cancel (computed for a queued job) is written, it is refused
        assert backend.apply([transitions.cancel(read, "too late", at(2))], at(2)) == [False]
        assert stored(backend, job.id).state is RUNNING
        # and a write for a job deleted meanwhile is refused too
        gone = put(backend, mill, at(3))
        update = transitions.cancel(stored(backend, gone.id), None, at(3))
        assert backend.delete(gone.id) is True
        assert backend.apply([update], at(4)) == [False] and backend.get(gone.id) is None

    def test_apply_says_for_each_update_of_a_batch_whether_it_was_written(
            self, backend: Backend, mill: Mill) -> None:
        # given two running jobs
        put(backend, mill, at(0))
        put(backend, mill, at(0))
        first, second = claim(backend, at(1), token="T")
        # when one batch holds a good write for the first and a stale one for the second
        good = Update(transitions.finish(first, Succeeded(1), at(2)), RUNNING, "T")
        stale = Update(transitions.finish(second, Succeeded(2), at(2)), RUNNING, "other")
        # then it says which were written, and wrote only those
        assert backend.apply([good, stale], at(2)) == [True, False]
        assert stored(backend, first.id).state is SUCCEEDED
        assert stored(backend, second.id).state is RUNNING

    def test_a_failed_attempt_with_tries_left_is_scheduled_for_its_retry_time(
            self, backend: Backend, mill: Mill) -> None:
        # given a job with one retry an hour later, running its first attempt
        put(backend, mill, at(0), retry=[(1, "1h")])
        running = claim_one(backend, at(0))
        # when the attempt fails at t=2
        error = JobError("ValueError", "bad row 7", "Traceback ...\nValueError: bad row 7")
        assert finish(backend, running, Failed(error), at(2)) is True
        # then the job waits for t=2+1h with the error kept and no lease
        got = stored(backend, running.id)
        assert (got.state, got.scheduled_at, got.error) == (SCHEDULED, at(2) + timedelta(hours=1), error)
        assert (got.attempts, got.attempts_left, got.finished_at, got.claim_token) == (1, 1, None, None)
        # and it runs again only once that time has come
        assert backend.promote_due(at("59m"), 10) == 0
        assert backend.promote_due(at(2) + timedelta(hours=1), 10) == 1
        assert claim_one(backend, at("2h")).attempts == 2

    def test_a_failed_last_attempt_ends_failed_with_its_error(
            self, backend: Backend, mill: Mill) -> None:
        # given a job without retries, running
        put(backend, mill, at(0), retry=0)
        running = claim_one(backend, at(0))
        # when its attempt fails
        error = JobError("KeyError", "'id'", "tb")
        assert finish(backend, running, Failed(error), at(3)) is True
        # then it is failed for good, with the error
        got = stored(backend, running.id)
        assert (got.state, got.error, got.finished_at, got.attempts_left) == (FAILED, error, at(3), 0)
        assert backend.promote_due(at("1d"), 10) == 0 and claim(backend, at("1d")) == []

    def test_a_run_that_continues_goes_back_to_the_queue_with_its_state(
            self, backend: Backend, mill: Mill) -> None:
        # given a running job
        put(backend, mill, at(0))
        running = claim_one(backend, at(0))
        # when its run answers "continue" with a state
        assert finish(backend, running, Continued({"page": 2}), at(1)) is True
        # then it is queued again with that state, the iteration counted, not the attempt
        got = stored(backend, running.id)
        assert (got.state, got.state_data, got.iterations, got.attempts) == (QUEUED, {"page": 2}, 1, 0)
        # and the next run sees the state; continuing with a delay schedules it
        again = claim_one(backend, at(1), token="t2")
        assert again.state_data == {"page": 2}
        assert finish(backend, again, Continued({"page": 3}, delay=60), at(2)) is True
        got = stored(backend, running.id)
        assert (got.state, got.scheduled_at, got.iterations) == (SCHEDULED, at(62), 2)

    def test_a_job_handed_back_at_shutdown_is_queued_again_without_counting_the_attempt(
            self, backend: Backend, mill: Mill) -> None:
        # given a running job
        put(backend, mill, at(0))
        running = claim_one(backend, at(0))
        # when its worker shuts down and hands it back
        assert finish(backend, running, HandedBack(), at(5)) is True
        # then it is queued again as if that attempt never started
        got = stored(backend, running.id)
        assert (got.state, got.attempts, got.claim_token, got.lease_until) == (QUEUED, 0, None, None)
        assert claim_one(backend, at(6), token="t2").attempts == 1

    def test_progress_is_set_only_under_the_claim_token(self, backend: Backend, mill: Mill) -> None:
        # given a running job
        put(backend, mill, at(0))
        running = claim_one(backend, at(0), token="A")
        # when its worker sets progress, it is stored
        assert backend.set_progress(running.id, "A", 40.0, "4 of 10", at(1)) is True
        got = stored(backend, running.id)
        assert (got.progress, got.progress_message) == (40.0, "4 of 10")
        # and a write under another token, or after the job finished, is refused
        assert backend.set_progress(running.id, "B", 90.0, "forged", at(2)) is False
        running.progress, running.progress_message = 40.0, "4 of 10"  # as the worker's copy has it
        assert finish(backend, running, Succeeded(None), at(3)) is True
        assert backend.set_progress(running.id, "A", 10.0, "late", at(4)) is False
        got = stored(backend, running.id)
        assert (got.progress, got.progress_message) == (100.0, "4 of 10")


# -- leases --------------------------------------------------------------------------------

class LeaseConformance(_Store):
    def test_a_heartbeat_extends_the_lease_of_a_job_still_held(
            self, backend: Backend, mill: Mill) -> None:
        # given a job claimed at t=0 with a lease to t=30
        put(backend, mill, at(0))
        running = claim_one(backend, at(0), token="A", lease=30)
        # when its worker heart-beats at t=20 to t=60
        lost = backend.heartbeat([(running.id, "A")], at(60), at(20))
        # then nothing is lost and the lease runs to t=60
        assert lost == []
        assert stored(backend, running.id).lease_until == at(60)
        assert backend.expired(at(45), 10) == []
        assert backend.heartbeat([], at(90), at(40)) == []

    def test_a_heartbeat_reports_the_leases_that_were_lost(
            self, backend: Backend, mill: Mill) -> None:
        # given a job still held, one finished meanwhile, and one the worker names with a wrong token
        for _ in range(3):
            put(backend, mill, at(0))
        held, done, taken = claim(backend, at(0), token="A")
        assert finish(backend, done, Succeeded(None), at(1))
        # when the worker heart-beats all three (and one that does not exist)
        lost = backend.heartbeat([(held.id, "A"), (done.id, "A"), (taken.id, "not-A"),
                                  ("999999999", "A")], at(60), at(2))
        # then all but the held one are reported lost
        assert sorted(lost) == sorted([done.id, taken.id, "999999999"])
        assert stored(backend, held.id).lease_until == at(60)
        assert stored(backend, taken.id).lease_until == at(30)

    def test_expired_finds_the_running_jobs_whose_lease_ran_out_before_now(
            self, backend: Backend, mill: Mill) -> None:
        # given leases to t=30 and t=60, and a queued job
        put(backend, mill, at(0))
        put(backend, mill, at(0))
        first = claim_one(backend, at(0), token="A", lease=30)
        second = claim_one(backend, at(0), token="B", lease=60)
        put(backend, mill, at(0))
        # then a lease that ends now has not run out; one that ended before now has
        assert backend.expired(at(30), 10) == []
        assert ids(backend.expired(at(31), 10)) == [first.id]
        assert ids(backend.expired(at(61), 10)) == [first.id, second.id]
        assert ids(backend.expired(at(61), 1)) == [first.id]
        # and the expired job reads as it was claimed, for the rescue to decide on
        [job] = backend.expired(at(31), 1)
        assert (job.state, job.claim_token, job.attempts) == (RUNNING, "A", 1)

    def test_a_rescued_job_with_tries_left_is_scheduled_and_its_lost_attempt_counted(
            self, backend: Backend, mill: Mill) -> None:
        # given a job with two retries five minutes apart, whose worker died holding it
        put(backend, mill, at(0), retry=[(2, "5m")])
        claim_one(backend, at(0), lease=30)
        # when its expired lease is rescued
        [expired] = backend.expired(at(31), 10)
        assert backend.apply([transitions.rescue(expired, at(31))], at(31)) == [True]
        # then it waits for its retry, the lost attempt counted, the reason recorded
        got = stored(backend, expired.id)
        assert (got.state, got.scheduled_at, got.attempts) == (SCHEDULED, at(31) + timedelta(minutes=5), 1)
        assert got.error is not None and got.error.type == "LeaseExpired"
        assert (got.claim_token, got.lease_until, got.worker) == (None, None, None)
        assert backend.expired(at("1h"), 10) == []
        # and it runs again at that time, as its second attempt
        backend.promote_due(at("6m"), 10)
        assert claim_one(backend, at("6m"), token="t2").attempts == 2

    def test_a_rescued_job_on_its_last_attempt_ends_failed(
            self, backend: Backend, mill: Mill) -> None:
        # given a job without retries whose worker died holding it
        put(backend, mill, at(0), retry=0)
        claim_one(backend, at(0), lease=30)
        # when it is rescued
        [expired] = backend.expired(at(31), 10)
        assert backend.apply([transitions.rescue(expired, at(31))], at(31)) == [True]
        # then it is failed, with the reason, never to be delivered again
        got = stored(backend, expired.id)
        assert (got.state, got.finished_at) == (FAILED, at(31))
        assert got.error is not None and got.error.type == "LeaseExpired"
        assert backend.promote_due(at("1d"), 10) == 0 and claim(backend, at("1d")) == []

    def test_a_rescue_loses_to_the_worker_that_finished_first(
            self, backend: Backend, mill: Mill) -> None:
        # given a rescuer that found an expired lease, and the slow worker finishing just then
        put(backend, mill, at(0))
        running = claim_one(backend, at(0), lease=30)
        [expired] = backend.expired(at(31), 10)
        assert finish(backend, running, Succeeded("done"), at(31)) is True
        # when the rescue is written, it is refused: the result stands
        assert backend.apply([transitions.rescue(expired, at(31))], at(31)) == [False]
        got = stored(backend, running.id)
        assert (got.state, got.result) == (SUCCEEDED, "done")

    def test_a_rescued_job_that_was_asked_to_cancel_ends_cancelled(
            self, backend: Backend, mill: Mill) -> None:
        # given a running job asked to cancel, whose worker then died
        job = mill.enqueue("noop")
        claim_one(backend, at(0), lease=30)
        mill.cancel(job.id, "not needed")
        # when it is rescued
        [expired] = backend.expired(at(31), 10)
        assert backend.apply([transitions.rescue(expired, at(31))], at(31)) == [True]
        # then it is cancelled, with the reason given
        got = stored(backend, job.id)
        assert (got.state, got.cancel_reason) == (CANCELLED, "not needed")

    def test_a_failed_attempt_does_not_drop_a_cancel_its_worker_had_not_seen_yet(
            self, backend: Backend, mill: Mill) -> None:
        # given a running job with tries left, cancelled before its worker polled for cancels
        job = mill.enqueue("noop", retry=3)
        running = claim_one(backend, at(0), lease=30)
        mill.cancel(job.id, "stop it")
        # when the attempt fails and the worker, unaware, writes the retry
        finish(backend, running, Failed(JobError("OSError", "disk")), at(1))
        # then the job is not handed out again: it ends cancelled, at the latest once its lease
        # has run out and the rescue has seen the cancel
        assert stored(backend, job.id).state in (RUNNING, CANCELLED)
        for expired in backend.expired(at(31), 10):
            backend.apply([transitions.rescue(expired, at(31))], at(31))
        got = stored(backend, job.id)
        assert (got.state, got.cancel_reason) == (CANCELLED, "stop it")
        assert backend.promote_due(at("1d"), 10) == 0 and claim(backend, at("1d")) == []

    def test_a_run_that_continues_does_not_drop_a_cancel_its_worker_had_not_seen_yet(
            self, backend: Backend, mill: Mill) -> None:
        # given a running job cancelled before its worker polled for cancels
        job = mill.enqueue("noop")
        running = claim_one(backend, at(0), lease=30)
        mill.cancel(job.id, "enough")
        # when its run answers "continue" and the worker, unaware, queues the next iteration
        finish(backend, running, Continued({"page": 2}), at(1))
        # then it ends cancelled, at the latest through the rescue of its lease
        for expired in backend.expired(at(31), 10):
            backend.apply([transitions.rescue(expired, at(31))], at(31))
        got = stored(backend, job.id)
        assert (got.state, got.cancel_reason) == (CANCELLED, "enough")

    def test_cancel_requests_name_the_running_jobs_asked_to_stop(
            self, backend: Backend, mill: Mill) -> None:
        # given two running jobs, one of which an operator cancels
        asked, left = mill.enqueue("noop"), mill.enqueue("noop")
        claim(backend, at(0))
        cancelled = mill.cancel(asked.id, "user asked")
        # then the job stays running until its code stops, and its worker learns why
        assert (cancelled.state, cancelled.cancel_requested) == (RUNNING, True)
        assert backend.cancel_requests([asked.id, left.id]) == {asked.id: "user asked"}
        assert backend.cancel_requests([]) == {}
        # and it keeps its lease while it winds down
        assert backend.heartbeat([(asked.id, "token-1")], at(60), at(10)) == []


# -- inspection ----------------------------------------------------------------------------

class InspectionConformance(_Store):
    def test_get_of_an_unknown_id_is_none(self, backend: Backend, mill: Mill) -> None:
        # given a store with a job, then ids that name none, or could name none, find nothing
        put(backend, mill, at(0))
        for unknown in ("999999999", "not-a-job-id", ""):
            assert backend.get(unknown) is None
            assert mill.get(unknown) is None

    def test_query_filters_by_state_queue_task_owner_and_parent(
            self, backend: Backend, mill: Mill) -> None:
        # given a parent and two children in other queues, tasks and owners; one child running
        parent = put(backend, mill, at(0), owner="alice")
        report = put(backend, mill, at(1), "other", queue="reports", owner="bob", parent=parent.id)
        urgent = put(backend, mill, at(2), queue="urgent", owner="alice", parent=parent.id)
        claim(backend, at(3), queues=["urgent"])

        def find(**where: Any) -> list[str]:
            return ids(everything(backend, **where))

        # then each filter finds its jobs, newest first
        assert find(states=(RUNNING,)) == [urgent.id]
        assert find(states=(QUEUED, RUNNING)) == [urgent.id, report.id, parent.id]
        assert find(states=(SUCCEEDED,)) == []
        assert find(queue="reports") == [report.id]
        assert find(task="other") == [report.id]
        assert find(owner="alice") == [urgent.id, parent.id]
        assert find(parent=parent.id) == [urgent.id, report.id]
        assert find(owner="alice", parent=parent.id, states=(RUNNING,)) == [urgent.id]
        assert find(queue="nowhere") == [] and find(parent="999999999") == []

    def test_query_pages_newest_first_with_a_cursor(self, backend: Backend, mill: Mill) -> None:
        # given seven jobs
        jobs = [put(backend, mill, at(n)) for n in range(7)]
        # when read three at a time, following the cursor
        pages, after = [], None
        while True:
            page, after = backend.query(JobFilter(), 3, after)
            pages.append(ids(page))
            if after is None:
                break
        # then pages of 3, 3 and 1 hold every job once, newest first
        assert [len(p) for p in pages] == [3, 3, 1]
        assert [i for p in pages for i in p] == ids(jobs)[::-1]

    def test_pages_neither_repeat_nor_skip_jobs_when_jobs_come_and_go_between_them(
            self, backend: Backend, mill: Mill) -> None:
        # given six jobs, of which the first page of three was read
        jobs = [put(backend, mill, at(n)) for n in range(6)]
        first, after = backend.query(JobFilter(), 3, None)
        assert ids(first) == ids(jobs[3:])[::-1] and after is not None
        # when new jobs arrive and the last job seen is deleted
        put(backend, mill, at(10))
        assert backend.delete(first[-1].id) is True
        # then the next page goes on where the first ended
        second, end = backend.query(JobFilter(), 3, after)
        assert (ids(second), end) == (ids(jobs[:3])[::-1], None)

    def test_a_page_that_ends_the_list_has_no_next_cursor(self, backend: Backend, mill: Mill) -> None:
        # given exactly two pages of jobs
        for n in range(6):
            put(backend, mill, at(n))
        # then the first page points on and the second, full as it is, ends the list
        first, after = backend.query(JobFilter(), 3, None)
        second, end = backend.query(JobFilter(), 3, after)
        assert (len(first), len(second), end) == (3, 3, None) and after is not None

    def test_paging_with_a_filter_sees_only_matching_jobs(self, backend: Backend, mill: Mill) -> None:
        # given jobs alternating between queues a and b
        jobs = [put(backend, mill, at(n), queue="ab"[n % 2]) for n in range(9)]
        in_a = [j.id for j in jobs if j.queue == "a"][::-1]
        # when queue a is read two at a time
        seen, after = [], None
        for _ in range(10):
            page, after = backend.query(JobFilter(queue="a"), 2, after)
            seen.extend(ids(page))
            if after is None:
                break
        # then exactly its jobs come back, newest first
        assert seen == in_a

    def test_the_mill_lists_jobs_with_its_filters(self, mill: Mill) -> None:
        # given two jobs of different tasks, queues and owners
        first = mill.enqueue("noop", owner="u1")
        second = mill.enqueue("other", queue="q2", owner="u2")
        # then the mill lists them newest first, filtered, limited and paged
        assert ids(mill.jobs()) == [second.id, first.id]
        assert ids(mill.jobs(state="queued", task="noop")) == [first.id]
        assert ids(mill.jobs(state=["succeeded", "queued"], owner="u2")) == [second.id]
        assert ids(mill.jobs(limit=1)) == [second.id]
        _, after = mill.page(limit=1)
        assert ids(mill.jobs(after=after)) == [first.id]

    def test_logs_come_back_oldest_first_and_a_limit_keeps_the_latest(
            self, backend: Backend, mill: Mill) -> None:
        # given lines logged by two attempts of a job, in two writes, and a line of another job
        job, neighbour = put(backend, mill, at(0)), put(backend, mill, at(0))
        lines = [("INFO", "start", 1), ("WARNING", "slow disk", 1), ("ERROR", "boom", 1),
                 ("INFO", "start again", 2), ("INFO", "done", 2)]
        records = [NewLog(job.id, attempt, at(n // 2), level, msg)  # some share a time
                   for n, (level, msg, attempt) in enumerate(lines)]
        backend.append_logs(records[:2])
        backend.append_logs([NewLog(neighbour.id, 1, at(1), "INFO", "other job"), *records[2:]])
        # then they read back in order, each with its time, level, message and attempt
        assert [(r.at, r.level, r.message, r.attempt) for r in backend.logs(job.id, None)] == [
            (at(n // 2), level, msg, attempt) for n, (level, msg, attempt) in enumerate(lines)]
        # and a limit keeps the latest lines, still oldest first
        assert [r.message for r in backend.logs(job.id, 2)] == ["start again", "done"]
        assert [r.message for r in backend.logs(neighbour.id, None)] == ["other job"]
        assert backend.logs("999999999", None) == []

    def test_deleting_a_job_deletes_its_logs_and_later_lines_for_it_are_dropped(
            self, backend: Backend, mill: Mill) -> None:
        # given a job with a log line, deleted
        job = put(backend, mill, at(0))
        backend.append_logs([NewLog(job.id, 1, at(1), "INFO", "hello")])
        assert backend.delete(job.id) is True
        # when a late line for it arrives, it is dropped without an error; no line is left
        backend.append_logs([NewLog(job.id, 1, at(2), "INFO", "too late")])
        assert backend.logs(job.id, None) == []

    def test_stats_count_the_jobs_of_each_queue_in_each_state(
            self, backend: Backend, mill: Mill) -> None:
        # given jobs in two queues: queued, scheduled, running and succeeded
        put(backend, mill, at(0), queue="a")
        put(backend, mill, at(0), queue="a", delay=60)
        put(backend, mill, at(0), queue="b")
        done = put(backend, mill, at(0), queue="b")
        running = claim(backend, at(1), queues=["b"])
        assert finish(backend, next(j for j in running if j.id == done.id), Succeeded(1), at(2))
        # then the backend counts them per queue and state
        assert counts(backend) == {"a": {"queued": 1, "scheduled": 1},
                                   "b": {"running": 1, "succeeded": 1}}
        # and the counts follow what happens next: a cancel, a promotion, a delete, a prune
        [scheduled] = everything(backend, states=(SCHEDULED,))
        assert backend.apply([transitions.cancel(scheduled, None, at(3))], at(3)) == [True]
        backend.enqueue([build(mill, at(3), queue="a", delay=5)], at(3))
        assert backend.promote_due(at(10), 10) == 1
        assert backend.delete(done.id) is True
        assert backend.prune(at(100), 100) == 1
        assert counts(backend) == {"a": {"queued": 2}, "b": {"running": 1}}

    def test_the_mill_stats_list_every_state_of_every_queue(self, mill: Mill) -> None:
        # given one job in queue q
        mill.enqueue("noop", queue="q")
        stats = mill.stats()
        # then every state is there, zero or not, for q and for the queues of the tasks
        zero = {s.value: 0 for s in JobState}
        assert stats["q"] == {**zero, "queued": 1}
        assert stats["default"] == zero and stats["slow"] == zero


# -- operator actions ----------------------------------------------------------------------

class OperatorConformance(_Store):
    def test_cancel_of_queued_job_means_it_never_runs(self, mill: Mill, clock: FakeClock) -> None:
        # given a queued job
        ran: list[str] = []
        mill.task(name="record")(lambda ctx: ran.append(ctx.job_id))
        job = mill.enqueue("record")
        # when it is cancelled
        cancelled = mill.cancel(job.id, "not needed")
        # then it is cancelled at once, with the reason, and a worker never runs it
        assert (cancelled.state, cancelled.cancel_reason, cancelled.finished_at) == (
            CANCELLED, "not needed", clock())
        drain(mill)
        assert ran == [] and job.refresh().state is CANCELLED

    def test_cancel_of_scheduled_job_means_it_never_runs(self, mill: Mill, clock: FakeClock) -> None:
        ran: list[str] = []
        mill.task(name="record")(lambda ctx: ran.append(ctx.job_id))
        # given a job scheduled in an hour, cancelled
        job = mill.enqueue("record", delay="1h")
        assert job.cancel().state is CANCELLED
        # when its time has passed and a worker runs, then it never runs
        clock.advance("2h")
        drain(mill)
        assert ran == [] and job.refresh().state is CANCELLED

    def test_cancel_of_running_job_asks_it_to_stop_and_it_ends_cancelled(
            self, backend: Backend, mill: Mill) -> None:
        # given a running job
        job = mill.enqueue("noop")
        running = claim_one(backend, at(0))
        # when it is cancelled, it is asked to stop but keeps running until it does
        assert mill.cancel(job.id, "stop it").state is RUNNING
        assert backend.cancel_requests([job.id]) == {job.id: "stop it"}
        # and when its worker reports that the run stopped, it ends cancelled with the reason
        running.cancel_requested, running.cancel_reason = True, "stop it"
        assert finish(backend, running, transitions.Aborted("stop it"), at(1)) is True
        got = mill.get(job.id)
        assert got is not None and (got.state, got.cancel_reason) == (CANCELLED, "stop it")

    def test_cancel_of_a_finished_job_is_refused(self, mill: Mill) -> None:
        # given a cancelled job, then cancelling it again is refused and changes nothing
        job = mill.enqueue("noop")
        mill.cancel(job.id)
        with pytest.raises(InvalidTransition):
            mill.cancel(job.id)
        assert job.refresh().state is CANCELLED

    def test_cancel_or_retry_of_an_unknown_job_raises_job_not_found(self, mill: Mill) -> None:
        # given no job with that id, then both actions say so
        with pytest.raises(JobNotFound):
            mill.cancel("999999999")
        with pytest.raises(JobNotFound):
            mill.retry("999999999")

    def test_retry_of_a_failed_job_runs_it_once_more_with_its_tries_counted_on(
            self, mill: Mill) -> None:
        # given a job that failed its only attempt
        calls: list[int] = []

        @mill.task(retry=0)
        def fails_once(ctx: Any) -> str:
            calls.append(ctx.attempt)
            if len(calls) == 1:
                raise ValueError("first time")
            return "second time"

        job = fails_once.enqueue()
        drain(mill)
        assert job.refresh().state is FAILED and job.attempts == 1
        # when it is retried by hand
        again = mill.retry(job.id)
        # then it is queued with one more attempt, the error gone
        assert (again.state, again.error, again.attempts, again.attempts_left) == (QUEUED, None, 1, 1)
        # and it runs again as attempt 2
        drain(mill)
        job.refresh()
        assert (job.state, job.result, job.attempts, calls) == (SUCCEEDED, "second time", 2, [1, 2])

    def test_retry_of_a_job_cancelled_while_running_runs_it_again(
            self, backend: Backend, mill: Mill) -> None:
        # given a job cancelled while it ran, whose run then stopped
        job = mill.enqueue("noop")
        running = claim_one(backend, at(0))
        mill.cancel(job.id, "oops")
        running.cancel_requested, running.cancel_reason = True, "oops"
        assert finish(backend, running, transitions.Aborted("oops"), at(1))
        # when it is retried, then it is queued, no longer cancelled, and runs
        again = mill.retry(job.id)
        assert (again.state, again.cancel_reason, again.cancel_requested) == (QUEUED, None, False)
        assert claim_one(backend, at(2), token="t2").attempts == 2

    def test_retry_of_an_unfinished_job_is_refused(self, mill: Mill) -> None:
        # given a queued job, then retrying it is refused and changes nothing
        job = mill.enqueue("noop")
        with pytest.raises(InvalidTransition):
            mill.retry(job.id)
        assert job.refresh().state is QUEUED

    def test_delete_removes_a_job_that_is_not_running_with_its_logs(
            self, backend: Backend, mill: Mill) -> None:
        # given a queued job with a log line
        job = mill.enqueue("noop")
        backend.append_logs([NewLog(job.id, 1, at(0), "INFO", "hello")])
        # when it is deleted, then it and its lines are gone, and deleting again says so
        assert mill.delete(job.id) is True
        assert mill.get(job.id) is None and mill.logs(job.id) == []
        assert mill.delete(job.id) is False
        assert mill.delete("999999999") is False

    def test_a_running_job_cannot_be_deleted(self, backend: Backend, mill: Mill) -> None:
        # given a running job, then deleting it is refused, by the mill and by the backend
        job = mill.enqueue("noop")
        claim_one(backend, at(0))
        with pytest.raises(InvalidTransition):
            mill.delete(job.id)
        assert backend.delete(job.id) is False
        assert stored(backend, job.id).state is RUNNING

    def test_delete_all_removes_every_job_that_is_not_running(
            self, backend: Backend, mill: Mill) -> None:
        # given one job in each state
        running = mill.enqueue("noop", queue="r")
        claim(backend, at(0), queues=["r"])
        mill.enqueue("noop")
        mill.enqueue("noop", delay="1h")
        mill.cancel(mill.enqueue("noop").id)
        failed = mill.enqueue("noop", queue="f", retry=0)
        [attempt] = claim(backend, at(1), queues=["f"], token="t2")
        assert finish(backend, attempt, Failed(JobError("E", "x")), at(2))
        done = mill.enqueue("noop", queue="d")
        [attempt] = claim(backend, at(3), queues=["d"], token="t3")
        assert finish(backend, attempt, Succeeded(1), at(4))
        # when the failed ones are deleted, only they go
        assert mill.delete_all(state="failed") == 1 and mill.get(failed.id) is None
        # when everything is deleted, the running job stays
        assert mill.delete_all() == 4
        assert ids(mill.jobs()) == [running.id] and mill.get(done.id) is None
        with pytest.raises(InvalidTransition):
            mill.delete_all(state="running")

    def test_delete_queued_removes_the_jobs_whose_arguments_match(self, mill: Mill) -> None:
        # given queued jobs of noop with various arguments, a scheduled one, and one of another task
        one_a, one_b = mill.enqueue("noop", args=[1]), mill.enqueue("noop", args=[1])
        two = mill.enqueue("noop", args=[2])
        keyed = mill.enqueue("noop", kwargs={"a": 1, "b": [1, "x"]})
        later = mill.enqueue("noop", args=[1], delay="1h")
        elsewhere = mill.enqueue("other", args=[1])
        # when the queued noop jobs with args [1] are deleted
        assert mill.delete_queued("noop", args=[1]) == 2
        # then those two are gone, the rest stays
        assert mill.get(one_a.id) is None and mill.get(one_b.id) is None
        assert {j.id for j in mill.jobs()} == {two.id, keyed.id, later.id, elsewhere.id}
        # and keyword arguments match whatever order they are given in
        assert mill.delete_queued("noop", kwargs={"b": [1, "x"], "a": 1}) == 1
        assert mill.get(keyed.id) is None
        assert mill.delete_queued("noop", kwargs={"a": 1}) == 0

    def test_delete_queued_deletes_at_most_count_and_only_in_the_queue_given(
            self, mill: Mill) -> None:
        # given three identical queued jobs in the default queue
        for _ in range(3):
            mill.enqueue("noop", args=["x"])
        # then a delete for another queue takes none, one with a count takes that many
        assert mill.delete_queued("noop", args=["x"], queue="elsewhere") == 0
        assert mill.delete_queued("noop", args=["x"], count=0) == 0
        assert mill.delete_queued("noop", args=["x"], count=2) == 2
        assert len(mill.jobs()) == 1
        assert mill.delete_queued("noop") == 1 and mill.jobs() == []

    def test_delete_scheduled_removes_only_scheduled_jobs(self, mill: Mill) -> None:
        # given a queued job and two scheduled ones, all alike
        now = mill.enqueue("noop", args=[1])
        mill.enqueue("noop", args=[1], delay="1h")
        mill.enqueue("noop", args=[1], delay="2h")
        # when scheduled ones are deleted, then only they go
        assert mill.delete_scheduled("noop", args=[1], count=1) == 1
        assert mill.delete_scheduled("noop", args=[1]) == 1
        assert ids(mill.jobs()) == [now.id]

    def test_prune_deletes_jobs_that_finished_before_the_cutoff(
            self, backend: Backend, mill: Mill) -> None:
        # given jobs finished at t=10, 20 and 100, and a pending one created at t=0
        pending = put(backend, mill, at(0), delay="1h")
        finished = []
        for t in (10, 20, 100):
            put(backend, mill, at(0))
            finished.append(claim_one(backend, at(t), token=f"t{t}"))
            assert finish(backend, finished[-1], Succeeded(t), at(t))
        # when jobs finished before t=50 are pruned, one at a time
        assert backend.prune(at(50), 1) == 1
        assert backend.prune(at(50), 100) == 1
        assert backend.prune(at(50), 100) == 0
        # then only the recent and the pending jobs are left
        assert sorted(ids(everything(backend))) == sorted([pending.id, finished[2].id])


# -- scheduling ----------------------------------------------------------------------------

class SchedulingConformance(_Store):
    def test_promote_due_queues_the_scheduled_jobs_whose_time_has_come(
            self, backend: Backend, mill: Mill) -> None:
        # given jobs due at t=10, 20 and 30
        a, b, c = (put(backend, mill, at(0), delay=d) for d in (10, 20, 30))
        # when due jobs are promoted at t=20
        assert backend.promote_due(at(20), 100) == 2
        # then those due up to and including now are queued; the later one waits
        assert [stored(backend, j.id).state for j in (a, b, c)] == [QUEUED, QUEUED, SCHEDULED]
        assert backend.promote_due(at(20), 100) == 0

    def test_promote_due_moves_at_most_limit_jobs_earliest_first(
            self, backend: Backend, mill: Mill) -> None:
        # given three due jobs, when at most two are promoted, then they are the two earliest
        late, early, middle = (put(backend, mill, at(0), delay=d) for d in (30, 10, 20))
        assert backend.promote_due(at(60), 2) == 2
        assert [stored(backend, j.id).state for j in (early, middle, late)] == [QUEUED, QUEUED,
                                                                                 SCHEDULED]

    def test_next_due_is_the_earliest_time_of_a_scheduled_job(
            self, backend: Backend, mill: Mill) -> None:
        # given no scheduled job, there is no next time, even with a queued one
        assert backend.next_due() is None
        put(backend, mill, at(0))
        assert backend.next_due() is None
        # given jobs due at t=30 and t=10, the next time is t=10, then t=30 once that is promoted
        put(backend, mill, at(0), delay=30)
        put(backend, mill, at(0), delay=10)
        assert backend.next_due() == at(10)
        backend.promote_due(at(10), 100)
        assert backend.next_due() == at(30)
        # a cancelled job has no time to wait for
        [waiting] = everything(backend, states=(SCHEDULED,))
        assert backend.apply([transitions.cancel(waiting, None, at(11))], at(11)) == [True]
        assert backend.next_due() is None

    def test_a_time_in_the_past_means_now(self, mill: Mill, clock: FakeClock) -> None:
        # when a job is enqueued for yesterday, then it is queued for now
        job = mill.enqueue("noop", at=clock() - timedelta(days=1))
        assert (job.state, job.scheduled_at) == (QUEUED, clock())

    def test_a_retry_an_hour_away_runs_once_the_clock_has_moved_an_hour(
            self, mill: Mill, clock: FakeClock) -> None:
        # given a task that fails once, retried an hour later
        calls: list[datetime] = []

        @mill.task(retry=[(1, "1h")])
        def flaky(ctx: Any) -> str:
            calls.append(mill.now())
            if len(calls) == 1:
                raise OSError("network down")
            return "ok"

        job = flaky.enqueue()
        # when a worker runs what is ready, the job fails and waits an hour
        drain(mill)
        assert (job.refresh().state, job.scheduled_at) == (SCHEDULED, at("1h"))
        clock.advance("59m")
        drain(mill)
        assert job.refresh().state is SCHEDULED and len(calls) == 1
        # then an hour later it runs again, and succeeds
        clock.advance("1m")
        drain(mill)
        assert (job.refresh().state, job.attempts, calls) == (SUCCEEDED, 2, [at(0), at("1h")])


# -- periodic ------------------------------------------------------------------------------

class PeriodicConformance(_Store):
    def test_a_registered_periodic_task_is_on_and_fires_after_its_first_slot(
            self, backend: Backend, mill: Mill) -> None:
        # given a task registered at slot t=300
        backend.periodic_register("tick", at(300))
        assert set(backend.periodic_states()) == {"tick"}
        state = backend.periodic_states()["tick"]
        assert (state.enabled, state.last_slot) == (True, at(300))
        # then that slot does not fire; the next one does, with the job given
        assert backend.periodic_fire("tick", at(300), build(mill, at(300)), at(300)) is None
        job = backend.periodic_fire("tick", at(600), build(mill, at(600), title="tick"), at(600))
        assert job is not None and stored(backend, job.id).title == "tick"
        assert backend.periodic_states()["tick"].last_slot == at(600)

    def test_registering_a_known_periodic_task_again_leaves_it_as_it_is(
            self, backend: Backend) -> None:
        # given a task registered, then stopped
        backend.periodic_register("tick", at(300))
        backend.periodic_set("tick", False, at(600))
        # when it is registered again (a worker restarts), it stays stopped at its slot
        backend.periodic_register("tick", at(900))
        state = backend.periodic_states()["tick"]
        assert (state.enabled, state.last_slot) == (False, at(300))

    def test_a_periodic_slot_fires_once_however_many_workers_try(
            self, backend: Backend, second_backend: Backend, mill: Mill) -> None:
        # given a periodic task, and eight workers on two connections about to fire its next slot
        backend.periodic_register("tick", at(0))
        connections = [backend, second_backend]

        def fire(i: int) -> Job | None:
            return connections[i % 2].periodic_fire("tick", at(300), build(mill, at(300)), at(300))

        # when they all fire it at once
        fired = [job for job in in_threads(8, fire) if job is not None]
        # then one job is stored for the slot; firing it again does nothing
        assert len(fired) == 1 and ids(everything(backend)) == [fired[0].id]
        assert backend.periodic_fire("tick", at(300), build(mill, at(300)), at(301)) is None
        # nor does an older slot fire after a newer one
        assert backend.periodic_fire("tick", at(150), build(mill, at(301)), at(301)) is None
        assert len(everything(backend)) == 1

    def test_a_stopped_periodic_task_does_not_fire(self, backend: Backend, mill: Mill) -> None:
        # given a periodic task that was stopped
        backend.periodic_register("tick", at(0))
        backend.periodic_set("tick", False, at(0))
        # then its next slot does not fire, and it keeps its last slot
        assert backend.periodic_fire("tick", at(300), build(mill, at(300)), at(300)) is None
        state = backend.periodic_states()["tick"]
        assert (state.enabled, state.last_slot) == (False, at(0)) and everything(backend) == []

    def test_turning_a_periodic_task_on_again_does_not_catch_up_missed_slots(
            self, backend: Backend, mill: Mill) -> None:
        # given a task stopped after its slot at t=0
        backend.periodic_register("tick", at(0))
        backend.periodic_set("tick", False, at(0))
        # when it is turned on again at t=3000, the latest slot then
        backend.periodic_set("tick", True, at(3000))
        # then the slots it missed, and the current one, do not fire; the next one does
        for slot in (300, 600, 3000):
            assert backend.periodic_fire("tick", at(slot), build(mill, at(3001)), at(3001)) is None
        assert backend.periodic_fire("tick", at(3300), build(mill, at(3300)), at(3300)) is not None

    def test_turning_on_a_periodic_task_that_is_on_keeps_its_last_slot(
            self, backend: Backend, mill: Mill) -> None:
        # given a task that is on since slot t=300, when it is turned on again at t=900
        backend.periodic_register("tick", at(300))
        backend.periodic_set("tick", True, at(900))
        # then its last slot stays, and the slot after it still fires
        assert backend.periodic_states()["tick"].last_slot == at(300)
        assert backend.periodic_fire("tick", at(600), build(mill, at(600)), at(600)) is not None

    def periodic_mill(self, url: str, backend: Backend, clock: FakeClock, hits: list[datetime]) -> Mill:
        """A mill with one task that runs every five minutes and records when it ran."""
        mill = Mill(url, clock=clock, backend=backend)

        @mill.task(every="5m")
        def tick(ctx: Any) -> None:
            hits.append(mill.now())

        return mill

    def test_a_periodic_task_seen_for_the_first_time_starts_at_its_next_slot(
            self, url: str, backend: Backend, second_backend: Backend, clock: FakeClock) -> None:
        # given a mill with a task every five minutes, first seen at 00:02
        hits: list[datetime] = []
        mill = self.periodic_mill(url, backend, clock, hits)
        clock.set(at("2m"))
        # then nothing fires before 00:05
        assert Maintenance(mill).fire_periodic(clock()) == 0
        clock.set(at("4m59s"))
        assert Maintenance(mill).fire_periodic(clock()) == 0 and mill.jobs() == []
        # at 00:05 its slot fires once, even when two workers' maintenance both run
        clock.set(at("5m"))
        assert Maintenance(mill).fire_periodic(clock()) == 1
        twin = self.periodic_mill(url, second_backend, clock, hits)
        assert Maintenance(twin).fire_periodic(clock()) == 0
        assert Maintenance(mill).fire_periodic(clock()) == 0
        [job] = mill.jobs()
        assert (job.task, job.state) == ("tick", QUEUED)

    def test_missed_periodic_slots_are_not_caught_up(
            self, url: str, backend: Backend, clock: FakeClock) -> None:
        # given a task every five minutes that fired at 00:05
        hits: list[datetime] = []
        mill = self.periodic_mill(url, backend, clock, hits)
        Maintenance(mill).fire_periodic(clock())
        clock.set(at("5m"))
        assert drain(mill)["succeeded"] == 1
        # when no worker ran for half an hour
        clock.set(at("35m30s"))
        # then only the latest missed slot runs, once
        drain(mill)
        drain(mill)
        assert hits == [at("5m"), at("35m30s")]

    def test_stop_periodic_removes_its_pending_jobs_and_start_does_not_catch_up(
            self, url: str, backend: Backend, clock: FakeClock) -> None:
        # given a task every five minutes with a slot fired but not yet run
        hits: list[datetime] = []
        mill = self.periodic_mill(url, backend, clock, hits)
        maintenance = Maintenance(mill)
        maintenance.fire_periodic(clock())
        clock.set(at("5m"))
        assert maintenance.fire_periodic(clock()) == 1
        # when it is stopped, its pending job goes, and no slot fires
        assert mill.stop_periodic("tick") == 1 and mill.jobs() == []
        clock.set(at("20m"))
        assert maintenance.fire_periodic(clock()) == 0
        # when it is started again, the slots missed meanwhile do not fire; the next one does
        mill.start_periodic("tick")
        assert maintenance.fire_periodic(clock()) == 0
        clock.set(at("25m"))
        assert maintenance.fire_periodic(clock()) == 1
        assert hits == []


# -- payload -------------------------------------------------------------------------------

def typed(value: Any) -> Any:
    """`value` with the type of each scalar beside it: `True` is not `1`, `1.0` is not `1`."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = {"level": level, "down": [value]} if level % 2 else [value]
    return value


PAYLOAD: dict[str, Any] = {
    "unicode": "héllo wörld ✓ 日本語 עברית 🚀 e\u0301 \u2028\u2029 \U0010ffff",
    "escapes": "quote \" backslash \\ slash / newline \n tab \t bell \x07",
    "empty": "",
    "ünïcode kéy 🔑": True,
    "big": 2**64 + 1,
    "negative big": -(2**70),
    "ints": [0, -1, 2**53 + 1, 2**63 - 1, -(2**63)],
    "floats": [0.1, -2.5, 1.0, 1e308, 5e-324, 1.7976931348623157e308, 123456.789e-3],
    "literals": [True, False, None],
    "empties": [[], {}, [[]], {"": {}}],
    "nested": _nested(30),
}


class PayloadConformance(_Store):
    def test_arguments_round_trip_as_strict_json(self, backend: Backend, mill: Mill) -> None:
        # given a job whose arguments hold every kind of JSON value
        args = [PAYLOAD["big"], PAYLOAD["floats"], PAYLOAD["unicode"], None, True]
        job = put(backend, mill, at(0), args=args, kwargs=PAYLOAD)
        # when it is read back
        got = stored(backend, job.id)
        # then the arguments are equal, and of the same types (a bool is not an int, 1.0 not 1)
        assert (got.args, got.kwargs) == (args, PAYLOAD)
        assert (typed(got.args), typed(got.kwargs)) == (typed(args), typed(PAYLOAD))

    def test_results_state_and_errors_round_trip_as_strict_json(
            self, backend: Backend, mill: Mill) -> None:
        put(backend, mill, at(0))
        # a run that continues keeps its state
        running = claim_one(backend, at(0))
        assert finish(backend, running, Continued(PAYLOAD), at(1))
        assert typed(stored(backend, running.id).state_data) == typed(PAYLOAD)
        # a failed attempt keeps its error, in any script
        running = claim_one(backend, at(1), token="t2")
        error = JobError("ValueError", "bad «row» ✓", "Traceback\n  «файл» 🚀\nValueError: bad «row» ✓")
        assert finish(backend, running, Failed(error, retryable=True, delay=0), at(2))
        assert stored(backend, running.id).error == error
        # and the result of a success comes back as it was
        backend.promote_due(at(2), 10)
        running = claim_one(backend, at(2), token="t3")
        assert finish(backend, running, Succeeded(PAYLOAD), at(3))
        got = stored(backend, running.id)
        assert typed(got.result) == typed(PAYLOAD)

    def test_scalar_results_round_trip_with_their_type(self, backend: Backend, mill: Mill) -> None:
        # given results of each JSON type, then each comes back with its type
        results: list[Any] = [None, 0, 1.0, -0.5, True, "", "text", [], {}, 2**63]
        for n, result in enumerate(results):
            put(backend, mill, at(n))
            running = claim_one(backend, at(n), token=f"t{n}")
            assert finish(backend, running, Succeeded(result), at(n))
            assert typed(stored(backend, running.id).result) == typed(result)

    def test_progress_messages_log_lines_and_reasons_keep_their_text(
            self, backend: Backend, mill: Mill) -> None:
        # given a running job, and text in several scripts, with quotes and a newline
        job = mill.enqueue("noop")
        running = claim_one(backend, at(0))
        text = "½ done ✓ 🚀\nline two \"quoted\" \\ עברית"
        # when it is written as a progress message, a log line and a cancel reason
        assert backend.set_progress(job.id, running.claim_token or "", 50.0, text, at(1))
        backend.append_logs([NewLog(job.id, 1, at(1), "INFO", text)])
        mill.cancel(job.id, text)
        # then each reads back as written
        got = stored(backend, job.id)
        assert (got.progress_message, got.cancel_reason) == (text, text)
        assert [r.message for r in backend.logs(job.id, None)] == [text]

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), "nul \x00 char", "lone \ud800",
                                     {1: "int key"}, {"set": {1, 2}}, _nested(70)],
                             ids=["nan", "infinity", "nul", "surrogate", "int-key", "set", "too-deep"])
    def test_a_payload_that_breaks_the_policy_is_refused_and_nothing_is_stored(
            self, mill: Mill, bad: Any) -> None:
        # when a value that is not strict JSON is enqueued, alone or in a batch, it is refused
        with pytest.raises(PayloadError):
            mill.enqueue("noop", kwargs={"value": bad})
        with pytest.raises(PayloadError):
            mill.enqueue_many([{"task": "noop"}, {"task": "noop", "args": [bad]}])
        # then nothing is stored
        assert mill.jobs() == []

    def test_a_payload_over_the_size_limit_is_refused(self, url: str, backend: Backend,
                                                     clock: FakeClock) -> None:
        # given a mill that takes payloads of up to 1000 bytes
        mill = Mill(url, clock=clock, backend=backend, payload_limit=1000)
        mill.task(noop)
        # then a payload within it is stored, one over it refused
        mill.enqueue("noop", args=["x" * 900])
        with pytest.raises(PayloadError):
            mill.enqueue("noop", args=["x" * 1001])
        assert len(mill.jobs()) == 1


# -- the whole life of a job, through a worker ---------------------------------------------

class LifecycleConformance(_Store):
    def test_an_enqueued_job_runs_to_succeeded_with_its_result(
            self, mill: Mill, clock: FakeClock) -> None:
        # given a job enqueued with arguments
        job = mill.enqueue("echo", args=[1, "two"], kwargs={"three": [3]})
        # when a worker runs what is ready
        counted = drain(mill)
        # then the job succeeded with the task's result, in one attempt
        job.refresh()
        assert (job.state, job.result, job.attempts, job.progress) == (
            SUCCEEDED, {"args": [1, "two"], "kwargs": {"three": [3]}}, 1, 100.0)
        assert job.started_at == job.finished_at == clock() and counted["succeeded"] == 1
        assert (job.claim_token, job.lease_until) == (None, None)

    def test_a_job_that_keeps_failing_ends_failed_after_its_last_try(
            self, mill: Mill, clock: FakeClock) -> None:
        # given a task that always fails, with two retries half an hour apart
        @mill.task(retry=[(2, "30m")])
        def broken(ctx: Any) -> None:
            raise ValueError(f"attempt {ctx.attempt} failed")

        job = broken.enqueue()
        # when it has run at 00:00, 00:30 and 01:00
        for _ in range(3):
            drain(mill)
            clock.advance("30m")
        # then it is failed after three attempts, with the last error and where it was raised
        job.refresh()
        assert (job.state, job.attempts, job.attempts_left) == (FAILED, 3, 0)
        assert job.error is not None and (job.error.type, job.error.message) == (
            "ValueError", "attempt 3 failed")
        assert "raise ValueError" in job.error.traceback
        assert job.finished_at == at("1h")

    def test_what_a_task_logs_and_reports_is_stored_with_its_job(self, mill: Mill) -> None:
        @mill.task
        def chatty(ctx: Any) -> None:
            ctx.progress(40, "4 of 10")
            ctx.log.info("hello %s", "world")
            ctx.log.warning("careful")

        # when a task that reports progress and logs has run
        job = chatty.enqueue()
        drain(mill)
        # then its job holds the message and the lines, with the attempt that wrote them
        job.refresh()
        assert (job.state, job.progress_message) == (SUCCEEDED, "4 of 10")
        assert [(r.level, r.message, r.attempt) for r in job.logs()] == [
            ("INFO", "hello world", 1), ("WARNING", "careful", 1)]


class BackendConformance(EnqueueConformance, ClaimConformance, FinishConformance, LeaseConformance,
                         InspectionConformance, OperatorConformance, SchedulingConformance,
                         PeriodicConformance, PayloadConformance, LifecycleConformance):
    """The whole suite. Subclass it with a fixture `url` (see the module docstring)."""


__all__ = [
    "T0", "BackendConformance", "ClaimConformance", "EnqueueConformance", "FinishConformance",
    "InspectionConformance", "LeaseConformance", "LifecycleConformance", "OperatorConformance",
    "PayloadConformance", "PeriodicConformance", "SchedulingConformance", "at",
]
