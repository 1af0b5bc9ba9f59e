"""Conformance, operator actions: cancel, retry, delete, prune."""

from __future__ import annotations

from typing import Any

import pytest

from ... import transitions
from ...backends.base import Backend, NewLog
from ...errors import InvalidTransition, JobNotFound
from ...job import JobError
from ...mill import Mill
from ...transitions import Failed, Succeeded
from .. import FakeClock, drain
from ._base import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    _Store,
    at,
    claim,
    claim_one,
    everything,
    finish,
    ids,
    put,
    stored,
)


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

