"""The worker: claims jobs in batches, runs them (threads, or an event loop for `async def`),
heart-beats their leases, and hands every outcome to the writer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from .. import payload, transitions
from ..errors import BackendUnavailable, ConfigError, PayloadError, ScheduleError, TaskmillError
from ..job import Job, JobError, JobState, Update
from ..maintenance import Maintenance
from ..signals import Cancelled, Continue, Retry
from ..task import TaskDef
from ..timeutil import delay_seconds, seconds
from ..transitions import Aborted, Continued, Failed, HandedBack, Outcome, Succeeded
from .context import Context
from .writer import Writer

if TYPE_CHECKING:
    from ..mill import Mill

log = logging.getLogger("taskmill.worker")
TICK = 0.1
CANCEL_POLL = 0.5
MAINTENANCE_EVERY = 1.0
STOP_WAIT_AFTER_GRACE = 5.0
EXIT_TIMEOUT_KILL = 75  # a supervised process ended itself to stop a task past its timeout
SAME_SIGNAL_WINDOW = 1.0  # a second signal sooner than this is the first one delivered twice


def parse_queues(queues: str | Sequence[str]) -> list[str] | None:
    """`"*"` (all) -> None; `"a,b"` or `["a", "b"]` -> the list."""
    items = queues.split(",") if isinstance(queues, str) else list(queues)
    names = [q.strip() for q in items if isinstance(q, str) and q.strip()]
    if len(names) != len(items) or not names:
        raise ConfigError(f"queues must be '*', a comma-separated string or a list of names, "
                          f"got {queues!r}")
    return None if "*" in names else names


@dataclass(eq=False)
class Running:
    job: Job
    ctx: Context
    definition: TaskDef | None
    decided: bool = False
    future: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Worker:
    """Runs jobs of `queues` with `concurrency` slots. See `Mill.worker`."""

    def __init__(self, mill: Mill, queues: str | Sequence[str] = "*", concurrency: int = 8,
                 lease: Any = "30s", poll: Any = "1s", grace: Any = "30s") -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency must be a whole number of 1 or more, got {concurrency!r}")
        self.mill = mill
        self.queues = parse_queues(queues)
        self.concurrency = concurrency
        self.lease = seconds(lease, what="lease")
        self.poll = seconds(poll, what="poll")
        self.grace = seconds(grace, what="grace", allow_zero=True)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.counts = {"succeeded": 0, "failed": 0, "cancelled": 0, "retried": 0, "lost": 0}
        self._lock = threading.Lock()
        # Keyed by (job id, claim token): a timed-out thread may still run while this worker
        # already runs the job's next attempt under a new token.
        self._running: dict[tuple[str, str | None], Running] = {}
        # Runs whose outcome is decided but not yet written: their leases are still renewed.
        self._unwritten: dict[tuple[str, str | None], Running] = {}
        self._stopping = threading.Event()
        self._slot_freed = threading.Event()
        # Claims come from the claim loop and, with a store that can do both in one transaction,
        # from the writer as it writes finished jobs; this lock keeps them within the free slots.
        self._claim_lock = threading.Lock()
        self._claims_open = False
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._writer: Writer | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._hooks: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None
        self._maintainer: threading.Thread | None = None
        # Set by a supervisor's worker processes: a thread task past its timeout ends the process.
        self.kill_on_timeout = False
        # Set where the worker owns its process (the CLI): jobs that do not stop after the grace
        # are handed back and the process exits; embedded, they are left to their leases.
        self.exit_when_stuck = False
        self._maintenance = Maintenance(mill, after_rescue=self._after_rescue)
        self._signals = 0

    # -- public ----------------------------------------------------------------------------

    def run(self, burst: bool = False) -> None:
        """Claim and run jobs until stopped (SIGTERM, SIGINT, `stop()`), or, with `burst`, until
        no job is ready."""
        self._stopping.clear()
        restore = self._install_signals()
        self._setup()
        self._started.set()
        try:
            self._claim_loop(burst)
        finally:
            self._shutdown()
            restore()

    def start(self) -> None:
        """Run the worker in a background thread; `stop()` ends it."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("this worker is running already")
        self._started.clear()
        self._thread = threading.Thread(target=self.run, name=f"taskmill-worker-{self.id}",
                                        daemon=True)
        self._thread.start()
        self._started.wait(10)

    def stop(self, grace: Any = None) -> None:
        """Stop claiming; running jobs get `grace` seconds, then are told to stop and handed back."""
        if grace is not None:
            self.grace = seconds(grace, what="grace", allow_zero=True)
        self._stopping.set()
        self._slot_freed.set()
        with contextlib.suppress(TaskmillError):
            self.mill.backend.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def running_jobs(self) -> list[Job]:
        with self._lock:
            return [r.job for r in self._running.values()]

    # -- setup and shutdown ----------------------------------------------------------------

    def _install_signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        first_at = 0.0

        def handler(signum: int, frame: FrameType | None) -> None:
            nonlocal first_at
            now = time.monotonic()
            if self._signals and now - first_at < SAME_SIGNAL_WINDOW:
                return  # the same stop, delivered twice (terminal group + supervisor, systemd)
            self._signals += 1
            first_at = first_at or now
            if self._signals > 1:
                log.warning("second signal: exiting now; leases will bring running jobs back")
                os._exit(1)
            log.info("stopping: finishing running jobs (grace %.0fs); signal again to exit now",
                     self.grace)
            self._stopping.set()
            self._slot_freed.set()
            # End the claim loop's wait for work now (not a handler's job: it may hold a lock).
            threading.Thread(target=self._wake, name="taskmill-wake", daemon=True).start()

        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for s, h in previous.items():
                signal.signal(s, h)

        return restore

    def _wake(self) -> None:
        with contextlib.suppress(TaskmillError):
            self.mill.backend.notify()

    def _setup(self) -> None:
        self._signals = 0
        warning = self.mill.backend.durability_warning()
        if warning:
            log.warning(warning)
        self._writer = Writer(self.mill)
        self._writer.apply = self._apply_and_claim
        self._claims_open = True
        self._writer.start()
        self._pool = concurrent.futures.ThreadPoolExecutor(self.concurrency, "taskmill-task")
        if any(d.is_async for d in self.mill.registry.values()):
            self._loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(target=self._loop.run_forever,
                                                 name="taskmill-loop", daemon=True)
            self._loop_thread.start()
        self._ticker = threading.Thread(target=self._tick_loop, name="taskmill-ticker", daemon=True)
        self._ticker.start()
        self._maintainer = threading.Thread(target=self._maintenance_loop, name="taskmill-maintenance",
                                            daemon=True)
        self._maintainer.start()
        with contextlib.suppress(TaskmillError):  # listen for wake-ups before the first claim
            self.mill.backend.wait_for_work(0)

    def _shutdown(self) -> None:
        self._claims_open = False
        deadline = time.monotonic() + self.grace
        while self._running and time.monotonic() < deadline:
            self._slot_freed.wait(0.05)
            self._slot_freed.clear()
        with self._lock:
            left = list(self._running.values())
        if left:
            log.warning("%d job(s) still running after the grace period: asking them to stop",
                        len(left))
            for r in left:
                r.ctx.shutting_down = True
                r.ctx._request_stop()
            deadline = time.monotonic() + min(STOP_WAIT_AFTER_GRACE, max(self.grace, 0.5))
            while self._running and time.monotonic() < deadline:
                self._slot_freed.wait(0.05)
                self._slot_freed.clear()
            with self._lock:
                left = [r for r in self._running.values() if not r.decided]
            if left and self.exit_when_stuck:
                # "Once they stop, or the process exits": this process exits now, so they are
                # handed back uncounted; their threads end with it.
                for r in left:
                    self._decide(r, HandedBack())
                assert self._writer is not None
                self._writer.flush(10)
                log.warning("%d job(s) did not stop: handed back; exiting now", len(left))
                os._exit(0)
            if left:
                log.warning("%d job(s) did not stop; their leases will bring them back once "
                            "they lapse", len(left))
        assert self._writer is not None and self._pool is not None
        self._writer.flush()
        if self._hooks is not None:  # hooks log through the writer: let them finish first
            self._hooks.shutdown(wait=True)
            self._hooks = None
        self._writer.stop()
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(5)
        if self._maintainer is not None:
            self._maintainer.join(5)
        if self._hooks is not None:
            self._hooks.shutdown(wait=True)
            self._hooks = None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(5)
            self._loop = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- claiming --------------------------------------------------------------------------

    def _claim_loop(self, burst: bool) -> None:
        backend = self.mill.backend
        failures = 0
        while not self._stopping.is_set():
            free = self.concurrency - len(self._running)
            try:
                if free > 0 and self._writer_claims():
                    # The writer is writing finished jobs and will claim for the free slots in the
                    # same transaction: wait for it rather than claim in a second one.
                    assert self._writer is not None
                    self._writer.wait_updates_written(0.05)
                    free = self.concurrency - len(self._running)
                if free > 0 and self._claim(free):
                    failures = 0
                    continue
                if burst:
                    if self._running or not self._writer_idle():
                        self._slot_freed.wait(0.05)
                        self._slot_freed.clear()
                        continue
                    report = self._maintenance.run_once(self.mill.now())
                    if report.promoted or report.fired or report.rescued or self._claim(free):
                        continue
                    return
                if free <= 0:
                    self._slot_freed.wait(self.poll)
                    self._slot_freed.clear()
                    continue
                now = self.mill.now()
                due = backend.next_due()
                if due is not None and due <= now and backend.promote_due(now, 1000):
                    continue
                timeout = self.poll
                if due is not None:
                    timeout = max(0.001, min(timeout, (due - now).total_seconds()))
                backend.wait_for_work(timeout)
                failures = 0
            except BackendUnavailable as exc:
                failures += 1
                wait = min(0.2 * 2 ** failures, 10.0)
                log.warning("store unavailable (%s); retrying in %.1fs", exc, wait)
                self._stopping.wait(wait)

    def _writer_idle(self) -> bool:
        return self._writer is None or self._writer.idle()

    def _writer_claims(self) -> bool:
        """True while the writer has finished jobs to write and will claim with them."""
        writer = self._writer
        return writer is not None and writer.apply is not None and writer.has_updates()

    def _claim(self, limit: int) -> int:
        """Claim up to `limit` jobs (fewer if the writer took slots meanwhile) and start them;
        returns how many, or -1 if no slot was left after all (the caller looks again)."""
        with self._claim_lock:
            limit = min(limit, self.concurrency - len(self._running))
            if limit <= 0:
                return -1
            now = self.mill.now()
            jobs = self.mill.backend.claim(self.queues, limit, self.id, secrets.token_hex(8),
                                           now + timedelta(seconds=self.lease), now)
            for job in jobs:
                self._start_job(job)
        return len(jobs)

    def _apply_and_claim(self, updates: list[Update], now: datetime) -> list[bool]:
        """The writer's write of finished jobs, which claims jobs for the free slots in the same
        transaction: one commit (one fsync at SQLite's synchronous=FULL) instead of two."""
        backend = self.mill.backend
        if not self._claims_open or self._stopping.is_set():
            return list(backend.apply(updates, now))
        with self._claim_lock:
            free = max(0, self.concurrency - len(self._running))
            applied, jobs = backend.apply_and_claim(
                updates, now, self.queues, free, self.id, secrets.token_hex(8),
                now + timedelta(seconds=self.lease))
            for job in jobs:
                self._start_job(job)
        return list(applied)

    def _start_job(self, job: Job) -> None:
        job._mill = self.mill
        definition = self.mill.registry.get(job.task)
        ctx = Context(self.mill, job, self._writer)
        running = Running(job, ctx, definition)
        with self._lock:
            self._running[(job.id, job.claim_token)] = running
        if definition is None:
            error = JobError("UnknownTask", f"this worker has no task named {job.task!r}")
            self._decide(running, Failed(error))
            self._release(running)
            return
        if definition.is_async and self._loop is not None:
            running.future = asyncio.run_coroutine_threadsafe(self._run_async(running), self._loop)
        else:
            assert self._pool is not None
            running.future = self._pool.submit(self._run_sync, running)
        self.mill.emit("started", job)

    # -- running one job -------------------------------------------------------------------

    def _run_sync(self, running: Running) -> None:
        assert running.definition is not None
        try:
            args, kwargs = running.definition.revive(running.job.args, running.job.kwargs)
            value = running.definition.call(running.ctx, *args, **kwargs)
            outcome = self._outcome_of_value(running, value)
        except BaseException as exc:
            outcome = self._outcome_of_error(running, exc)
        self._decide(running, outcome)
        self._release(running)

    async def _run_async(self, running: Running) -> None:
        assert running.definition is not None
        try:
            args, kwargs = running.definition.revive(running.job.args, running.job.kwargs)
            value = await running.definition.call(running.ctx, *args, **kwargs)
            outcome = self._outcome_of_value(running, value)
        except asyncio.CancelledError as exc:
            outcome = self._outcome_of_error(running, exc)
        except Exception as exc:
            outcome = self._outcome_of_error(running, exc)
        self._decide(running, outcome)
        self._release(running)

    def _outcome_of_value(self, running: Running, value: Any) -> Outcome:
        limit = self.mill.payload_limit
        try:
            if isinstance(value, Continue):
                payload.dumps(value.state, "state", limit)
                return Continued(value.state, delay_seconds(value.delay, "Continue delay"))
            payload.dumps(value, "result", limit)
        except (PayloadError, ScheduleError) as exc:
            return Failed(_error_of(exc), retryable=False)
        return Succeeded(value)

    def _outcome_of_error(self, running: Running, exc: BaseException) -> Outcome:
        ctx, job = running.ctx, running.job
        if ctx.timed_out:
            return Failed(JobError("TimeoutError", f"the run took longer than its timeout of "
                                   f"{job.timeout}s"))
        if isinstance(exc, Cancelled | asyncio.CancelledError):
            if job.cancel_requested:
                return Aborted(job.cancel_reason)
            if ctx.shutting_down:
                return HandedBack()
            return Aborted(str(exc) or "cancelled by the task")
        if ctx.shutting_down and not job.cancel_requested:
            return HandedBack()
        if isinstance(exc, Retry):
            try:
                wait = None if exc.delay is None else delay_seconds(exc.delay, "Retry delay")
            except ScheduleError as bad:
                return Failed(_error_of(bad), retryable=False)
            return Failed(JobError("Retry", str(exc)), retryable=True, delay=wait)
        definition = running.definition
        retryable = not (definition and isinstance(exc, definition.no_retry))
        return Failed(_error_of(exc), retryable=retryable)

    def _decide(self, running: Running, outcome: Outcome) -> None:
        """Turn an outcome into the guarded write; only the first outcome of a run counts."""
        with self._lock:
            if running.decided:
                return
            running.decided = True
        self._write_outcome(running, outcome)

    def _write_outcome(self, running: Running, outcome: Outcome) -> None:
        job = running.job
        new = transitions.finish(job, outcome, self.mill.now(), self.mill.rng)
        update = Update(new, JobState.RUNNING, job.claim_token)
        assert self._writer is not None
        with self._lock:  # its lease is renewed until the outcome is written
            self._unwritten[(job.id, job.claim_token)] = running
        self._writer.complete(update, lambda ok: self._after(running, outcome, new, ok))

    def _release(self, running: Running) -> None:
        with self._lock:
            if self._running.get((running.job.id, running.job.claim_token)) is running:
                del self._running[(running.job.id, running.job.claim_token)]
        self._slot_freed.set()

    def _after(self, running: Running, outcome: Outcome, new: Job, ok: bool) -> None:
        with self._lock:
            self._unwritten.pop((running.job.id, running.job.claim_token), None)
        if not ok and self._cancel_seen_late(running):
            self._write_outcome(running, outcome)  # decide again, now knowing of the cancel
            return
        if not ok:
            self.counts["lost"] += 1
            log.warning("job %s: the lease was lost (rescued by another worker?); this run's "
                        "outcome is discarded", new.id)
            return
        key = {JobState.SCHEDULED: "retried"}.get(new.state, new.state.value)
        if key in self.counts:
            self.counts[key] += 1
        new._mill = self.mill
        self.mill.emit(new.state.value if new.state.terminal else "requeued", new)
        if not new.state.terminal:  # a retry or a next iteration: wake the claim loops now
            self.mill.backend.notify()
        if running.definition is not None and running.definition.task_class is not None:
            self._schedule_hooks(running.definition, running.ctx, new)

    def _cancel_seen_late(self, running: Running) -> bool:
        """True if the write was refused only because a cancel came in that this run had not
        seen yet (the store refuses to send such a job back to run); the run now knows of it."""
        if running.job.cancel_requested:
            return False
        stored = self.mill.backend.get(running.job.id)
        if (stored is None or stored.state is not JobState.RUNNING
                or stored.claim_token != running.job.claim_token or not stored.cancel_requested):
            return False
        running.job.cancel_requested, running.job.cancel_reason = True, stored.cancel_reason
        return True

    def _after_rescue(self, old: Job, new: Job) -> None:
        definition = self.mill.registry.get(new.task)
        if definition is not None and definition.task_class is not None and new.state.terminal:
            self._schedule_hooks(definition, Context(self.mill, new, self._writer), new)

    def _schedule_hooks(self, definition: TaskDef, ctx: Context, new: Job) -> None:
        if not new.state.terminal:
            return
        if self._hooks is None:
            self._hooks = concurrent.futures.ThreadPoolExecutor(2, "taskmill-hooks")
        self._hooks.submit(_run_hooks, definition, ctx, new)

    # -- the ticker: cancel polls, heartbeats, timeouts, maintenance -------------------------

    def _tick_loop(self) -> None:
        last_cancel = last_beat = 0.0
        while not (self._stopping.is_set() and not self._running):
            now_m = time.monotonic()
            try:
                self._check_timeouts()
                if self._running and now_m - last_cancel >= CANCEL_POLL:
                    last_cancel = now_m
                    self._poll_cancels()
                if self._running and now_m - last_beat >= self.lease / 3:
                    last_beat = now_m
                    self._heartbeat()
            except BackendUnavailable as exc:
                log.warning("store unavailable in the ticker: %s", exc)
            except Exception:
                log.exception("ticker failed")
            time.sleep(TICK)

    def _maintenance_loop(self) -> None:
        """Scheduler duties, apart from the ticker: a slow one (a busy store, a periodic task's
        hook) must never hold up heartbeats."""
        while not self._stopping.wait(MAINTENANCE_EVERY):
            try:
                self._maintenance.run_once(self.mill.now())
            except BackendUnavailable as exc:
                log.warning("store unavailable for maintenance: %s", exc)
            except Exception:
                log.exception("maintenance failed")

    def _check_timeouts(self) -> None:
        with self._lock:
            late = [r for r in self._running.values() if not r.decided
                    and r.ctx.time_left is not None and r.ctx.time_left <= 0
                    and not r.ctx.timed_out]
        for r in late:
            r.ctx.timed_out = True
            r.ctx._request_stop()
            if r.definition is not None and r.definition.is_async and r.future is not None:
                r.future.cancel()
            elif self.kill_on_timeout:
                self._end_process_for(r)
            else:
                # A thread cannot be killed: the attempt fails now and its late return is ignored.
                self._decide(r, Failed(JobError("TimeoutError", f"the run took longer than its "
                                                f"timeout of {r.job.timeout}s")))

    def _end_process_for(self, late: Running) -> None:
        """In a supervised worker process: a thread cannot be killed, so the process ends. The
        late job fails with TimeoutError, the others go back to the queue uncounted, and the
        supervisor starts a fresh process."""
        log.error("job %s (%s) ran past its timeout of %ss: ending this worker process to stop "
                  "it; the supervisor starts another", late.job.id, late.job.task, late.job.timeout)
        self._claims_open = False
        self._stopping.set()
        self._decide(late, Failed(JobError("TimeoutError", f"the run took longer than its timeout "
                                           f"of {late.job.timeout}s; its process was ended")))
        with self._lock:
            others = [r for r in self._running.values() if r is not late]
        for r in others:
            r.ctx.shutting_down = True
            self._decide(r, HandedBack())
        assert self._writer is not None
        self._writer.flush(10)
        os._exit(EXIT_TIMEOUT_KILL)

    def _poll_cancels(self) -> None:
        with self._lock:
            by_id = {r.job.id: r for r in self._running.values()
                     if not r.job.cancel_requested and not r.decided}
        for job_id, reason in self.mill.backend.cancel_requests(list(by_id)).items():
            r = by_id[job_id]
            r.job.cancel_requested, r.job.cancel_reason = True, reason
            r.ctx._request_stop()

    def _heartbeat(self) -> None:
        with self._lock:
            held = {r.job.id: r for r in self._running.values()
                    if r.job.claim_token and not r.decided}
            held.update((r.job.id, r) for r in self._unwritten.values())
        if not held:
            return
        now = self.mill.now()
        lost = self.mill.backend.heartbeat([(i, r.job.claim_token or "") for i, r in held.items()],
                                           now + timedelta(seconds=self.lease), now)
        for job_id in lost:
            r = held[job_id]
            if not r.decided and not r.ctx.cancelled:
                log.warning("job %s: lease lost; asking it to stop", job_id)
                r.ctx._request_stop()


def _error_of(exc: BaseException) -> JobError:
    text = "".join(traceback.format_exception(exc))
    clean = payload.storable_text
    return JobError(clean(type(exc).__name__), clean(str(exc)), clean(text))


def _run_hooks(definition: TaskDef, ctx: Context, job: Job) -> None:
    instance = ctx._instance or (definition.task_class() if definition.task_class else None)
    if instance is None:
        return
    try:
        if job.state is JobState.SUCCEEDED:
            instance.on_done(ctx, job.result)
        elif job.state is JobState.FAILED:
            if job.error is not None and job.error.type == transitions.MAX_ITERATIONS_REASON:
                instance.on_max_iterations(ctx)
            instance.on_error(ctx, job.error)
        elif job.state is JobState.CANCELLED:
            instance.on_abort(ctx)
    except Exception:
        log.exception("a hook of task %s failed (job %s)", definition.name, job.id)
