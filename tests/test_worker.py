"""The worker in this process: progress, logs, signals, cancel, timeouts, hooks, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from taskmill import Cancelled, Continue, JobState, Mill, Retry, Task
from taskmill.worker import Context


@pytest.fixture
def mill(sqlite_url: str) -> Iterator[Mill]:
    with Mill(sqlite_url) as m:
        yield m


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_task_reports_progress_and_logs_that_are_stored_with_the_job(mill: Mill) -> None:
    @mill.task
    def export(ctx: Context, rows: int) -> dict[str, int]:
        ctx.progress(40, "deleted 400 of 1000")
        ctx.log.info("exported %d rows", rows)
        ctx.log.warning("slow disk")
        return {"rows": rows}

    job = export.enqueue(rows=3)
    mill.worker().run(burst=True)
    job.refresh()
    assert (job.state, job.result, job.progress) == (JobState.SUCCEEDED, {"rows": 3}, 100)
    assert job.progress_message == "deleted 400 of 1000"
    assert [(r.level, r.message, r.attempt) for r in job.logs()] == [
        ("INFO", "exported 3 rows", 1), ("WARNING", "slow disk", 1)]
    assert job.started_at is not None and job.finished_at is not None


def test_a_failing_task_records_the_error_with_a_traceback_ending_where_it_was_raised(mill: Mill) -> None:
    @mill.task(retry=0)
    def broken(ctx: Context) -> None:
        raise ValueError("bad row 7")

    job = broken.enqueue()
    mill.worker().run(burst=True)
    job.refresh()
    assert job.state is JobState.FAILED and job.error is not None
    assert (job.error.type, job.error.message) == ("ValueError", "bad row 7")
    assert 'raise ValueError("bad row 7")' in job.error.traceback.strip().splitlines()[-2]
    assert job.attempts == 1 and job.attempts_left == 0


def test_a_failed_attempt_with_tries_left_is_scheduled_and_no_retry_errors_fail_at_once(mill: Mill) -> None:
    @mill.task(retry=3, no_retry=(KeyError,))
    def flaky(ctx: Context, kind: str) -> None:
        raise (KeyError if kind == "key" else OSError)(kind)

    retried, final = flaky.enqueue(kind="os"), flaky.enqueue(kind="key")
    mill.worker().run(burst=True)
    assert retried.refresh().state is JobState.SCHEDULED and retried.attempts_left == 3
    assert final.refresh().state is JobState.FAILED


def test_retry_signal_asks_for_another_try_at_the_chosen_time(mill: Mill) -> None:
    @mill.task
    def polite(ctx: Context) -> None:
        raise Retry(delay="250ms")

    job = polite.enqueue()
    mill.worker().run(burst=True)
    job.refresh()
    assert job.state is JobState.SCHEDULED and job.attempts == 1
    assert job.error is not None and job.error.type == "Retry"


def test_continue_runs_iterations_with_state_until_done(mill: Mill) -> None:
    seen: list[tuple[int, Any]] = []

    @mill.task
    def migrate(ctx: Context, batches: int) -> dict[str, int]:
        seen.append((ctx.iteration, ctx.state))
        done = (ctx.state or 0) + 1
        if done < batches:
            return Continue(state=done)  # type: ignore[return-value]
        return {"batches": done}

    job = migrate.enqueue(batches=3)
    mill.worker().run(burst=True)
    job.refresh()
    assert seen == [(1, None), (2, 1), (3, 2)]
    assert (job.state, job.result, job.iterations, job.attempts) == (JobState.SUCCEEDED, {"batches": 3}, 3, 1)


def test_hooks_run_when_a_class_task_ends(mill: Mill) -> None:
    events: list[str] = []

    @mill.task(retry=0, max_iterations=2)
    class Hooked(Task):
        def run(self, ctx: Context, input: Any) -> Any:
            kind = ctx.kwargs["kind"]
            if kind == "fail":
                raise RuntimeError("no")
            if kind == "loop":
                return Continue()
            return "ok"

        def on_done(self, ctx: Context, result: Any) -> None:
            events.append(f"done:{result}")

        def on_error(self, ctx: Context, error: Any) -> None:
            events.append(f"error:{error.type}")

        def on_max_iterations(self, ctx: Context) -> None:
            events.append("max")

    for kind in ("ok", "fail", "loop"):
        Hooked.enqueue(kind=kind)
    mill.worker(concurrency=1).run(burst=True)
    wait_until(lambda: len(events) == 4)
    assert sorted(events) == ["done:ok", "error:RuntimeError", "error:max_iterations", "max"]


def test_cancel_of_a_queued_job_means_it_never_runs(mill: Mill) -> None:
    ran: list[int] = []

    @mill.task
    def work(ctx: Context) -> None:
        ran.append(1)

    job = work.enqueue()
    job.cancel(reason="not needed")
    mill.worker().run(burst=True)
    assert ran == [] and job.refresh().state is JobState.CANCELLED
    assert job.cancel_reason == "not needed"


def test_cancel_of_a_running_job_is_seen_within_a_second_and_ends_it_cancelled(mill: Mill) -> None:
    started = threading.Event()
    aborted: list[str] = []

    @mill.task
    class Long(Task):
        def run(self, ctx: Context, input: Any) -> None:
            started.set()
            while not ctx.cancelled:
                time.sleep(0.01)
            raise Cancelled()

        def on_abort(self, ctx: Context) -> None:
            aborted.append(ctx.job_id)

    job = Long.enqueue()
    worker = mill.worker()
    worker.start()
    try:
        assert started.wait(10)
        asked = time.monotonic()
        mill.cancel(job.id, "user asked")
        job.wait(timeout=5)
        assert time.monotonic() - asked < 1.5
    finally:
        worker.stop()
    assert (job.state, job.cancel_reason) == (JobState.CANCELLED, "user asked")
    wait_until(lambda: aborted == [job.id])


def test_a_run_that_returns_a_result_after_a_cancel_succeeds(mill: Mill) -> None:
    started = threading.Event()

    @mill.task
    def stubborn(ctx: Context) -> str:
        started.set()
        while not ctx.cancelled:
            time.sleep(0.01)
        return "finished anyway"

    job = stubborn.enqueue()
    worker = mill.worker()
    worker.start()
    try:
        assert started.wait(10)
        mill.cancel(job.id)
        job.wait(timeout=5)
    finally:
        worker.stop()
    assert (job.state, job.result) == (JobState.SUCCEEDED, "finished anyway")


def test_a_thread_task_past_its_timeout_fails_with_timeout_error_and_its_late_return_is_ignored(
        mill: Mill) -> None:
    @mill.task(timeout="200ms", retry=0)
    def slow(ctx: Context) -> str:
        assert ctx.time_left is not None and ctx.time_left <= 0.2
        while not ctx.cancelled:
            time.sleep(0.01)
        time.sleep(0.1)
        return "too late"

    job = slow.enqueue()
    mill.worker().run(burst=True)
    job.refresh()
    assert job.state is JobState.FAILED and job.error is not None and job.error.type == "TimeoutError"
    assert job.result is None


def test_an_async_task_runs_on_the_event_loop_and_is_cancelled_at_its_timeout(mill: Mill) -> None:
    @mill.task
    async def fetch(ctx: Context, n: int) -> int:
        await asyncio.sleep(0.01)
        return n + 1

    @mill.task(timeout="100ms", retry=0)
    async def hang(ctx: Context) -> None:
        await asyncio.sleep(30)

    ok, hung = fetch.enqueue(n=1), hang.enqueue()
    mill.worker().run(burst=True)
    assert ok.refresh().result == 2
    hung.refresh()
    assert hung.state is JobState.FAILED and hung.error is not None
    assert hung.error.type == "TimeoutError"


def test_close_to_timeout_says_when_less_than_a_tenth_is_left(mill: Mill) -> None:
    @mill.task(timeout="1s")
    def careful(ctx: Context) -> list[bool]:
        early = ctx.close_to_timeout()
        time.sleep(0.95)
        return [early, ctx.close_to_timeout()]

    job = careful.enqueue()
    mill.worker().run(burst=True)
    assert job.refresh().result == [False, True]


def test_a_result_that_is_not_json_fails_the_job_at_once(mill: Mill) -> None:
    @mill.task(retry=5)
    def bad(ctx: Context) -> object:
        return {"when": object()}

    job = bad.enqueue()
    mill.worker().run(burst=True)
    job.refresh()
    assert job.state is JobState.FAILED and job.error is not None and job.error.type == "PayloadError"


def test_stop_with_a_grace_lets_a_running_job_finish(mill: Mill) -> None:
    started = threading.Event()

    @mill.task
    def short(ctx: Context) -> str:
        started.set()
        time.sleep(0.3)
        return "done"

    job = short.enqueue()
    worker = mill.worker()
    worker.start()
    assert started.wait(10)
    worker.stop(grace=5)
    assert job.refresh().state is JobState.SUCCEEDED


def test_a_job_still_running_after_the_grace_is_handed_back_without_counting_the_attempt(
        mill: Mill) -> None:
    started = threading.Event()

    @mill.task
    def endless(ctx: Context) -> None:
        started.set()
        while not ctx.cancelled:
            time.sleep(0.01)
        raise Cancelled()

    job = endless.enqueue()
    worker = mill.worker()
    worker.start()
    assert started.wait(10)
    worker.stop(grace=0.2)
    job.refresh()
    assert (job.state, job.attempts, job.claim_token) == (JobState.QUEUED, 0, None)


def test_paused_queues_are_not_claimed_until_resumed(mill: Mill) -> None:
    @mill.task(queue="mail")
    def send(ctx: Context) -> None: ...

    job = send.enqueue()
    mill.pause_queue("mail")
    mill.worker().run(burst=True)
    assert job.refresh().state is JobState.QUEUED
    mill.resume_queue("mail")
    mill.worker().run(burst=True)
    assert job.refresh().state is JobState.SUCCEEDED


def test_a_worker_serves_only_its_queues(mill: Mill) -> None:
    @mill.task(queue="a")
    def in_a(ctx: Context) -> None: ...

    @mill.task(queue="b")
    def in_b(ctx: Context) -> None: ...

    a, b = in_a.enqueue(), in_b.enqueue()
    mill.worker(queues="a").run(burst=True)
    assert a.refresh().state is JobState.SUCCEEDED and b.refresh().state is JobState.QUEUED
    mill.worker(queues=["a", "b"]).run(burst=True)
    assert b.refresh().state is JobState.SUCCEEDED


def test_higher_priority_runs_first_and_equal_priority_in_order(mill: Mill) -> None:
    order: list[str] = []

    @mill.task
    def note(ctx: Context, name: str) -> None:
        order.append(name)

    note.enqueue(name="first")
    note.enqueue(name="second")
    note.with_options(priority=5).enqueue(name="urgent")
    mill.worker(concurrency=1).run(burst=True)
    assert order == ["urgent", "first", "second"]


def test_a_child_job_enqueued_from_a_task_has_its_parent_and_owner(mill: Mill) -> None:
    @mill.task
    def child(ctx: Context) -> None: ...

    @mill.task
    def parent(ctx: Context) -> str:
        return ctx.enqueue("child").id

    job = parent.with_options(owner="user:1").enqueue()
    mill.worker().run(burst=True)
    kid = mill.get(job.refresh().result)
    assert kid is not None and (kid.parent, kid.owner) == (job.id, "user:1")
    assert [j.id for j in mill.jobs(parent=job.id)] == [kid.id]


def test_a_cancel_that_arrives_as_the_attempt_fails_ends_the_job_cancelled_at_once(mill: Mill) -> None:
    started, go = threading.Event(), threading.Event()

    @mill.task(retry=5)
    def fragile(ctx: Context) -> None:
        started.set()
        go.wait(10)
        raise OSError("disk")

    job = fragile.enqueue()
    worker = mill.worker()
    worker.start()
    try:
        assert started.wait(10)
        # Given a cancel the worker has not polled for yet
        mill.cancel(job.id, "stop it")
        # When the attempt fails at once
        go.set()
        job.wait(timeout=5)
    finally:
        worker.stop()
    # Then the job ends cancelled, not scheduled for a retry nor left to its lease
    assert (job.state, job.cancel_reason) == (JobState.CANCELLED, "stop it")


def test_iterations_and_short_retries_run_at_once_on_a_live_worker_not_at_the_next_poll(
        mill: Mill) -> None:
    @mill.task
    def steps(ctx: Context) -> int:
        return Continue(state=(ctx.state or 0) + 1) if ctx.iteration < 6 else ctx.iteration  # type: ignore[return-value]

    worker = mill.worker(poll="5s")
    worker.start()
    try:
        began = time.monotonic()
        job = steps.enqueue().wait(timeout=10)
        took = time.monotonic() - began
    finally:
        worker.stop()
    assert (job.state, job.result) == (JobState.SUCCEEDED, 6)
    assert took < 2.5, f"six iterations took {took:.2f}s with a 5s poll"


def test_lines_that_hooks_log_survive_the_workers_stop(mill: Mill) -> None:
    @mill.task
    class Noted(Task):
        def run(self, ctx: Context, input: Any) -> str:
            return "ok"

        def on_done(self, ctx: Context, result: Any) -> None:
            ctx.log.info("done with %s", result)

    jobs = [Noted.enqueue() for _ in range(5)]
    mill.worker().run(burst=True)
    assert all([r.message for r in job.logs()] == ["done with ok"] for job in jobs)


def test_a_timed_out_thread_still_running_does_not_disturb_the_next_attempt_of_its_job(
        mill: Mill) -> None:
    @mill.task(timeout="3s", retry=[(2, "100ms")])
    def stubborn(ctx: Context) -> str:
        if ctx.attempt == 1:
            time.sleep(3.3)          # deaf to ctx.cancelled: outlives its timeout
            return "late"
        time.sleep(2.5)              # the retry outlives the first thread and its lease many times
        return "second"

    job = stubborn.enqueue()
    worker = mill.worker(concurrency=2, lease="600ms")
    worker.start()
    try:
        job.wait(timeout=20)
    finally:
        worker.stop()
    assert (job.state, job.result, job.attempts) == (JobState.SUCCEEDED, "second", 2)
    assert worker.counts["lost"] == 0


def test_a_listener_that_raises_breaks_neither_enqueue_nor_the_worker(mill: Mill) -> None:
    def broken(event: str, job: object) -> None:
        raise RuntimeError(f"listener failed on {event}")

    @mill.task
    def fine(ctx: Context) -> str:
        return "ok"

    mill.on_event(broken)
    job = fine.enqueue()
    mill.worker().run(burst=True)
    assert (job.refresh().state, job.result) == (JobState.SUCCEEDED, "ok")


def test_a_log_line_that_is_not_valid_unicode_is_stored_escaped_and_costs_no_other_job(
        mill: Mill) -> None:
    @mill.task
    def odd(ctx: Context) -> str:
        ctx.log.info("file name %s", "caf\udce9.txt")   # a lone surrogate, as os.listdir gives
        raise ValueError("bad \udce9 name")

    @mill.task
    def good(ctx: Context) -> str:
        return "fine"

    bad, fine = odd.with_options(retry=0).enqueue(), good.enqueue()
    mill.worker().run(burst=True)
    assert (fine.refresh().state, fine.result) == (JobState.SUCCEEDED, "fine")
    bad.refresh()
    assert bad.state is JobState.FAILED and bad.error is not None
    assert bad.error.message == "bad \\udce9 name"
    assert [r.message for r in bad.logs()] == ["file name caf\\udce9.txt"]
