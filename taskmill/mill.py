"""The `Mill`: the task registry and the one facade over a backend that everything else calls."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import urlsplit

from . import payload, transitions
from .backends.base import Backend, JobFilter, external_connection
from .errors import (
    ConfigError,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    ScheduleError,
    UnknownTask,
)
from .job import PENDING, STATES, TERMINAL, Job, JobState, LogRecord
from .retry import max_attempts as policy_attempts
from .retry import parse as parse_retry
from .task import TaskDef, TaskHandle, build_definition, check_priority, check_queue
from .timeutil import Duration, aware, delay_seconds, seconds, utcnow

if TYPE_CHECKING:
    from .worker.worker import Worker

log = logging.getLogger("taskmill")
DEFAULT_URL = "sqlite:///taskmill.db"
ENQUEUE_OPTIONS = frozenset({"queue", "delay", "at", "priority", "retry", "owner", "title",
                             "parent", "unique", "result_url", "return_url"})
Listener = Callable[[str, Job], None]


def open_backend(url: str) -> Backend:
    """The backend a URL names: sqlite:///file.db, postgresql://..., redis://..., memory://."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from .backends.sqlite import SQLiteBackend

        return SQLiteBackend(url)
    if scheme == "memory":
        from .backends.memory import MemoryBackend

        return MemoryBackend(url)
    if scheme in ("postgresql", "postgres"):
        try:
            from .backends.postgres import PostgresBackend
        except ImportError as exc:
            raise ConfigError("PostgreSQL needs `pip install taskmill[postgres]`") from exc
        return PostgresBackend(url)
    if scheme in ("redis", "rediss"):
        try:
            from .backends.redis import RedisBackend
        except ImportError as exc:
            raise ConfigError("Redis needs `pip install taskmill[redis]`") from exc
        return RedisBackend(url)
    raise ConfigError(f"unknown store URL {url!r}: use sqlite:///file.db, postgresql://..., "
                      f"redis://... or memory://")


class Mill:
    """Tasks, jobs and the store they live in. `Mill()` opens `TASKMILL_URL` or ./taskmill.db."""

    def __init__(self, url: str | None = None, *, clock: Callable[[], datetime] | None = None,
                 payload_limit: int = payload.DEFAULT_LIMIT, retention: Duration = "7d",
                 backend: Backend | None = None) -> None:
        self.url = url or os.environ.get("TASKMILL_URL") or DEFAULT_URL
        self._backend = backend
        self.clock = clock or utcnow
        self.payload_limit = payload_limit
        self.retention = seconds(retention, what="retention")
        self.registry: dict[str, TaskDef] = {}
        self._handles: dict[str, TaskHandle] = {}
        self._listeners: list[Listener] = []
        self.rng = random.Random()

    # -- the store -------------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The store, opened on first use (so a Mill can be imported without touching it)."""
        if self._backend is None:
            self._backend = open_backend(self.url)
        return self._backend

    def now(self) -> datetime:
        if self.clock is utcnow:
            return utcnow()
        return aware(self.clock(), "the clock's time")  # UTC, whatever zone the clock keeps

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

    @contextlib.contextmanager
    def using(self, connection: Any) -> Iterator[None]:
        """Enqueue on the application's own open connection, inside its transaction: the jobs
        exist if and only if that transaction commits (PostgreSQL)."""
        if not getattr(self.backend, "supports_external_connection", False):
            raise ConfigError(f"{type(self.backend).__name__} cannot enqueue on an outside "
                              f"connection")
        token = external_connection.set(connection)
        try:
            yield
        finally:
            external_connection.reset(token)

    def __enter__(self) -> Mill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events ----------------------------------------------------------------------------

    def on_event(self, listener: Listener) -> None:
        """Call `listener(event, job)` on each lifecycle event this process causes."""
        self._listeners.append(listener)

    def emit(self, event: str, job: Job) -> None:
        """Tell the listeners; one that raises is logged and never breaks the caller."""
        for listener in self._listeners:
            try:
                listener(event, job)
            except Exception:
                log.exception("event listener %r failed on %s of job %s", listener, event, job.id)

    # -- tasks -----------------------------------------------------------------------------

    @overload
    def task(self, source: Callable[..., Any], /) -> TaskHandle: ...
    @overload
    def task(self, source: None = None, /, **options: Any) -> Callable[[Any], Any]: ...

    def task(self, source: Any = None, /, **options: Any) -> Any:
        """Register a function or `Task` subclass: `@mill.task` or `@mill.task(queue=..., ...)`."""
        def register(obj: Any) -> Any:
            definition = build_definition(obj, options)
            if definition.name in self.registry:
                raise ConfigError(f"a task named {definition.name!r} is already registered")
            self.registry[definition.name] = definition
            if definition.task_class is not None:
                handle = TaskHandle(self, definition)
                obj.__taskmill__ = handle
                self._handles[definition.name] = handle
                return obj
            handle = TaskHandle(self, definition, fn=obj)
            self._handles[definition.name] = handle
            return handle

        return register(source) if source is not None else register

    def tasks(self) -> list[dict[str, Any]]:
        """The task definitions: name, queue, options, periodic schedule, input JSON Schema."""
        return [d.info() for d in sorted(self.registry.values(), key=lambda d: d.name)]

    def definition(self, name: str) -> TaskDef:
        try:
            return self.registry[name]
        except KeyError:
            raise UnknownTask(name) from None

    # -- enqueue ---------------------------------------------------------------------------

    def _check_options(self, options: Mapping[str, Any]) -> None:
        unknown = set(options) - ENQUEUE_OPTIONS
        if unknown:
            raise ConfigError(f"unknown enqueue option(s): {', '.join(sorted(unknown))}")

    def build(self, task: str, args: Sequence[Any] | None = None,
              kwargs: Mapping[str, Any] | None = None, *, now: datetime | None = None,
              **options: Any) -> Job:
        """A new job, checked in full, not yet stored (what enqueue stores)."""
        if options:
            self._check_options(options)
        definition = self.definition(task)
        # `type(...) is` first: the ABC checks cost more than the rest of a plain enqueue.
        if args is not None and type(args) is not list and type(args) is not tuple and (
                isinstance(args, str | bytes | Mapping) or not isinstance(args, Sequence)):
            raise InvalidInput(f"args must be a list, got {type(args).__name__}")
        if kwargs is not None and type(kwargs) is not dict and not isinstance(kwargs, Mapping):
            raise InvalidInput(f"kwargs must be an object, got {type(kwargs).__name__}")
        args_, kwargs_ = definition.prepare(args or (), kwargs or {})
        limit = self.payload_limit
        args_text = payload.dumps(args_, "args", limit)
        kwargs_text = payload.dumps(kwargs_, "kwargs", limit)
        now = now or self.now()
        if not options:  # a plain call: the task's own options, checked at registration
            key_text = "\x1f".join((task, definition.queue, "", args_text, kwargs_text))
            return Job(
                id="", task=task, queue=definition.queue, state=JobState.QUEUED, args=args_,
                kwargs=kwargs_, created_at=now, scheduled_at=now, priority=definition.priority,
                max_attempts=policy_attempts(definition.retry), retry=definition.retry,
                unique_key=hashlib.sha1(key_text.encode()).hexdigest(),
                max_iterations=definition.max_iterations, timeout=definition.timeout)
        scheduled_at = _when(now, options.get("delay"), options.get("at"))
        queue = check_queue(options["queue"]) if options.get("queue") else definition.queue
        priority = check_priority(options["priority"]) if "priority" in options else definition.priority
        policy = parse_retry(options["retry"]) if "retry" in options else definition.retry
        unique = options.get("unique", False)
        if unique not in (False, True, None, "reschedule"):
            raise ConfigError(f"unique must be True, False or 'reschedule', got {unique!r}")
        for key in ("owner", "title", "parent", "result_url", "return_url") if options else ():
            value = options.get(key)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{key} must be a string, got {value!r}")
            if value is not None:
                payload.dumps(value, key, limit)  # no NUL, no lone surrogate, not too long
        owner = options.get("owner")
        key_text = "\x1f".join((task, queue, owner or "", args_text, kwargs_text))
        return Job(
            id="", task=task, queue=queue, state=transitions.initial_state(scheduled_at, now),
            args=args_, kwargs=kwargs_, created_at=now, scheduled_at=scheduled_at,
            priority=priority, max_attempts=policy_attempts(policy), retry=policy, owner=owner,
            title=options.get("title"), parent=options.get("parent"),
            result_url=options.get("result_url"), return_url=options.get("return_url"),
            unique_key=hashlib.sha1(key_text.encode()).hexdigest(),
            max_iterations=definition.max_iterations, timeout=definition.timeout,
            unique=("return" if unique is True else unique) or None,
        )

    def enqueue(self, task: str, args: Sequence[Any] | None = None,
                kwargs: Mapping[str, Any] | None = None, **options: Any) -> Job:
        """Store a job of `task` and return its handle; nothing is stored if anything is wrong."""
        now = self.now()
        return self._store([self.build(task, args, kwargs, now=now, **options)], now)[0]

    def enqueue_many(self, specs: Iterable[Mapping[str, Any]]) -> list[Job]:
        """Store many jobs in one transaction: all or none. Each spec is like `POST /api/jobs`'s
        body: `{"task": name, "args": [...], "kwargs": {...}, ...options}`."""
        now = self.now()
        jobs = []
        for index, spec in enumerate(specs):
            if not isinstance(spec, Mapping) or "task" not in spec:
                raise InvalidInput(f"spec {index} needs a 'task': {spec!r}")
            options = {k: v for k, v in spec.items() if k not in ("task", "args", "kwargs")}
            try:
                jobs.append(self.build(spec["task"], spec.get("args"), spec.get("kwargs"),
                                       now=now, **options))
            except InvalidInput as exc:
                raise InvalidInput(f"spec {index}: {exc.message}",
                                   [{**e, "loc": [index, *e.get("loc", [])]} for e in exc.errors]
                                   ) from None
        return self._store(jobs, now) if jobs else []

    def _store(self, jobs: list[Job], now: datetime | None = None) -> list[Job]:
        stored = self.backend.enqueue(jobs, now or self.now())
        for job in stored:
            job._mill = self
        # A backend that sends the wake-up in the enqueue's own transaction needs no second one.
        if not getattr(self.backend, "notifies_on_enqueue", False) and any(
                j.state is JobState.QUEUED or j.state is JobState.SCHEDULED for j in stored):
            self.backend.notify()
        if self._listeners:
            for job in stored:
                self.emit("enqueued", job)
        return stored

    async def enqueue_async(self, task: str, args: Sequence[Any] | None = None,
                            kwargs: Mapping[str, Any] | None = None, **options: Any) -> Job:
        """`enqueue` for async code: the store is written off the event loop."""
        job = self.build(task, args, kwargs, **options)
        return (await asyncio.to_thread(self._store, [job]))[0]

    # -- reading ---------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        """The job with that id, or None."""
        job = self.backend.get(str(job_id))
        if job is not None:
            job._mill = self
        return job

    async def get_async(self, job_id: str) -> Job | None:
        return await asyncio.to_thread(self.get, job_id)

    def _require(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(str(job_id))
        return job

    def jobs(self, state: str | JobState | Sequence[str | JobState] | None = None,
             queue: str | None = None, task: str | None = None, owner: str | None = None,
             parent: str | None = None, limit: int = 100, after: str | None = None) -> list[Job]:
        """Jobs matching the filters, newest first."""
        return self.page(state, queue, task, owner, parent, limit, after)[0]

    def page(self, state: str | JobState | Sequence[str | JobState] | None = None,
             queue: str | None = None, task: str | None = None, owner: str | None = None,
             parent: str | None = None, limit: int = 100,
             after: str | None = None) -> tuple[list[Job], str | None]:
        """One page of `jobs` and the cursor of the next (None at the end)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ConfigError(f"limit must be between 1 and 10000, got {limit!r}")
        where = JobFilter(states=parse_states(state), queue=queue, task=task, owner=owner,
                          parent=None if parent is None else str(parent))
        jobs, cursor = self.backend.query(where, limit, after)
        for job in jobs:
            job._mill = self
        return jobs, cursor

    def logs(self, job_id: str, limit: int | None = None) -> list[LogRecord]:
        """A job's log lines, oldest first (the last `limit`)."""
        return self.backend.logs(str(job_id), limit)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per queue, the count of jobs in every state."""
        raw = self.backend.stats()
        queues = set(raw) | {d.queue for d in self.registry.values()}
        return {q: {s.value: raw.get(q, {}).get(s.value, 0) for s in STATES}
                for q in sorted(queues)}

    # -- operator actions ------------------------------------------------------------------

    def _transition(self, job_id: str, decide: Callable[[Job], Any], event: str) -> Job:
        """Read, decide (pure), write guarded; again if the job changed in between."""
        for _ in range(20):
            job = self._require(job_id)
            update = decide(job)
            if self.backend.apply([update], self.now())[0]:
                new: Job = update.job
                new._mill = self
                self.emit(event, new)
                return new
        raise InvalidTransition(f"job {job_id} kept changing; try again")

    def cancel(self, job_id: str, reason: str | None = None) -> Job:
        """A queued or scheduled job never runs; a running one sees `ctx.cancelled`."""
        if reason is not None:
            if not isinstance(reason, str):
                raise InvalidInput("the reason must be a string")
            payload.dumps(reason, "the reason", self.payload_limit)
        job = self._transition(str(job_id), lambda j: transitions.cancel(j, reason, self.now()),
                               "cancelled")
        self.backend.notify()
        return job

    def retry(self, job_id: str) -> Job:
        """Run a finished job again, with one more attempt."""
        job = self._transition(str(job_id), lambda j: transitions.retry(j, self.now()), "retried")
        self.backend.notify()
        return job

    def delete(self, job_id: str) -> bool:
        """Delete a job that is not running (cancel it first), with its logs."""
        job = self.get(job_id)
        if job is None:
            return False
        if job.state is JobState.RUNNING:
            raise InvalidTransition(f"job {job_id} is running: cancel it before deleting it")
        return self.backend.delete(str(job_id))

    def delete_all(self, state: str | JobState | Sequence[str | JobState] | None = None) -> int:
        """Delete every job that is not running (or those in `state`); returns how many."""
        states = parse_states(state) or tuple(s for s in STATES if s is not JobState.RUNNING)
        if JobState.RUNNING in states:
            raise InvalidTransition("running jobs cannot be deleted: cancel them first")
        return self.backend.delete_where(states, None, None, None, None, None)

    def delete_queued(self, task: str, args: Sequence[Any] | None = None,
                      kwargs: Mapping[str, Any] | None = None, queue: str | None = None,
                      count: int | None = None) -> int:
        """Delete queued jobs of `task` whose arguments equal those given (any if omitted)."""
        return self._delete_matching((JobState.QUEUED,), task, args, kwargs, queue, count)

    def delete_scheduled(self, task: str, args: Sequence[Any] | None = None,
                         kwargs: Mapping[str, Any] | None = None, queue: str | None = None,
                         count: int | None = None) -> int:
        """Delete scheduled (delayed or retrying) jobs of `task` matching the arguments given."""
        return self._delete_matching((JobState.SCHEDULED,), task, args, kwargs, queue, count)

    def _delete_matching(self, states: tuple[JobState, ...], task: str, args: Any, kwargs: Any,
                         queue: str | None, count: int | None) -> int:
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise ConfigError(f"count must be a whole number, got {count!r}")
        return self.backend.delete_where(
            states, task, None if args is None else payload.dumps(list(args), "args"),
            None if kwargs is None else payload.dumps(dict(kwargs), "kwargs"), queue, count)

    def pause_queue(self, name: str) -> None:
        """Workers claim nothing from `name` until it is resumed; kept in the store."""
        self.backend.set_paused(name, True)

    def resume_queue(self, name: str) -> None:
        self.backend.set_paused(name, False)
        self.backend.notify()

    def paused_queues(self) -> set[str]:
        return self.backend.paused()

    def _periodic(self, name: str) -> TaskDef:
        definition = self.definition(name)
        if definition.schedule is None:
            raise ConfigError(f"task {name!r} is not periodic")
        return definition

    def stop_periodic(self, name: str) -> int:
        """Stop firing a periodic task; removes its pending jobs and returns how many."""
        self._periodic(name)
        self.backend.periodic_set(name, False, self.now())
        return self.backend.delete_where(tuple(PENDING), name, None, None, None, None)

    def start_periodic(self, name: str) -> None:
        """Fire a stopped periodic task again, from its next slot on."""
        definition = self._periodic(name)
        assert definition.schedule is not None
        self.backend.periodic_set(name, True, definition.schedule.latest(self.now()))

    def periodic(self) -> list[dict[str, Any]]:
        """Each periodic task: its schedule, whether it is on, its last and next slot."""
        states = self.backend.periodic_states()
        now = self.now()
        out = []
        for d in sorted(self.registry.values(), key=lambda d: d.name):
            if d.schedule is None:
                continue
            state = states.get(d.name)
            out.append({"name": d.name, "schedule": d.schedule.describe(),
                        "enabled": state.enabled if state else True,
                        "last_slot": state.last_slot if state else None,
                        "next_slot": d.schedule.next_after(now)})
        return out

    # -- running ---------------------------------------------------------------------------

    def asgi(self, authenticate: Callable[[Any], Any] | None = None) -> Any:
        """The dashboard, HTTP API and GraphQL as one ASGI app, to serve or mount."""
        try:
            from .web import create_app
        except ImportError as exc:
            raise ConfigError("the web interface needs `pip install taskmill[web]`") from exc
        return create_app(self, authenticate=authenticate)

    def worker(self, queues: str | Sequence[str] = "*", concurrency: int = 8,
               lease: Any = "30s", poll: Any = "1s", grace: Any = "30s") -> Worker:
        """A worker over this mill's store; nothing runs until `run()` or `start()`."""
        from .worker.worker import Worker

        return Worker(self, queues=queues, concurrency=concurrency, lease=lease, poll=poll,
                      grace=grace)


def parse_states(state: str | JobState | Sequence[str | JobState] | None) -> tuple[JobState, ...]:
    if state is None:
        return ()
    items = [state] if isinstance(state, str | JobState) else list(state)
    out = []
    for item in items:
        for part in (item.split(",") if isinstance(item, str) else [item]):
            try:
                out.append(JobState(part.strip() if isinstance(part, str) else part))
            except ValueError:
                raise ConfigError(f"unknown state {part!r}: one of "
                                  f"{', '.join(s.value for s in STATES)}") from None
    return tuple(out)


def _when(now: datetime, delay: Any, at: Any) -> datetime:
    if delay is not None and at is not None:
        raise ScheduleError("give delay or at, not both")
    if delay is not None:
        if isinstance(delay, int | float) and not isinstance(delay, bool) and delay < 0:
            raise ScheduleError(f"delay must not be negative, got {delay!r}")
        return now + timedelta(seconds=delay_seconds(delay))
    if at is not None:
        return max(now, aware(at, "at"))
    return now


__all__ = ["TERMINAL", "Mill", "open_backend"]
