"""Conformance, finish: writes guarded by the claim token and the state they were computed from."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from ... import transitions
from ...backends.base import Backend
from ...job import JobError, Update
from ...mill import Mill
from ...transitions import Continued, Failed, HandedBack, Succeeded
from ._base import (
    FAILED,
    QUEUED,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    _Store,
    at,
    claim,
    claim_one,
    finish,
    put,
    snapshot,
    stored,
)


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


    def test_apply_and_claim_writes_the_finished_jobs_and_claims_the_next_ones(
            self, backend: Backend, mill: Mill) -> None:
        # given two running jobs (one of them under a stale token) and three queued ones
        for _ in range(5):
            put(backend, mill, at(0))
        first, second = claim(backend, at(1), limit=2, token="old")
        done = Update(transitions.finish(first, Succeeded("ok"), at(2)), RUNNING, "old")
        forged = Update(transitions.finish(replace(second, claim_token="other"), Succeeded("x"),
                                           at(2)), RUNNING, "other")
        # when a worker writes both outcomes and asks for two more jobs in the same call
        applied, taken = backend.apply_and_claim([done, forged], at(2), None, 2, "worker-2", "new",
                                                 at(32))
        # then only the write under the right token applied, and two queued jobs are now its own
        assert applied == [True, False]
        assert stored(backend, first.id).state == SUCCEEDED
        assert stored(backend, second.id).state == RUNNING
        assert len(taken) == 2 and {j.id for j in taken}.isdisjoint({first.id, second.id})
        assert all((j.state, j.claim_token, j.worker, j.attempts) == (RUNNING, "new", "worker-2", 1)
                   for j in taken)
        assert len(claim(backend, at(3))) == 1  # the fifth job is left for others
        assert claim(backend, at(3)) == []
