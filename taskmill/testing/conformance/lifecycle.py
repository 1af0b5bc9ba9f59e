"""Conformance, the whole life of a job, through a worker."""

from __future__ import annotations

from typing import Any

from ...mill import Mill
from .. import FakeClock, drain
from ._base import FAILED, SUCCEEDED, _Store, at


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

