"""Conformance, leases: heartbeats, expiry, rescue, and cancels a worker has not seen yet."""

from __future__ import annotations

from datetime import timedelta

from ... import transitions
from ...backends.base import Backend
from ...job import JobError
from ...mill import Mill
from ...transitions import Continued, Failed, Succeeded
from ._base import (
    CANCELLED,
    FAILED,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    _Store,
    at,
    claim,
    claim_one,
    finish,
    ids,
    put,
    stored,
)


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

