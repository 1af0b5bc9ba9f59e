"""Conformance, enqueue: ids, stored fields and times, batches, uniqueness."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta, timezone
from typing import Any

import pytest

from ...backends.base import Backend
from ...errors import UnknownTask
from ...mill import Mill
from ...transitions import Succeeded
from .. import FakeClock
from ._base import (
    QUEUED,
    SCHEDULED,
    _Store,
    at,
    build,
    claim,
    claim_one,
    counts,
    everything,
    finish,
    ids,
    in_threads,
    noop,
    put,
    snapshot,
    stored,
)


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

