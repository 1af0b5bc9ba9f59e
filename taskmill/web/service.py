"""The service functions behind every web interface (HTTP API, GraphQL, dashboard): Mill calls with
the principal's rules applied. All are blocking; async callers run them through `call`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from ..errors import AccessDenied, InvalidInput, JobNotFound
from ..job import STATES, TERMINAL, Job, JobState, LogRecord
from ..mill import Mill
from .auth import Principal
from .models import EnqueueRequest, JobsQuery

P = ParamSpec("P")
R = TypeVar("R")
OWN_STATS_LIMIT = 10_000
THROUGHPUT_SCAN = 2_000


async def call(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a blocking service function off the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    succeeded: int
    failed: int


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    counts: dict[str, int]
    paused: bool
    workers: list[str]


class Service:
    """One mill's management calls, each checked against the principal."""

    def __init__(self, mill: Mill) -> None:
        self.mill = mill

    # -- jobs --------------------------------------------------------------------------------

    def get(self, who: Principal, job_id: str) -> Job:
        """The job, if it exists and `who` may see it; else `JobNotFound` (never 403: another
        owner's job is as good as absent)."""
        job = self.mill.get(job_id)
        if job is None or not who.may_see(job.owner):
            raise JobNotFound(job_id)
        return job

    def page(self, who: Principal, query: JobsQuery) -> tuple[list[Job], str | None]:
        owner = query.owner if who.admin else who.owner
        if not who.admin and (owner is None or (query.owner is not None and query.owner != owner)):
            return [], None
        return self.mill.page(state=query.state, queue=query.queue, task=query.task, owner=owner,
                              parent=query.parent, limit=query.limit, after=query.after)

    def children(self, who: Principal, job_id: str, limit: int = 100) -> list[Job]:
        return self.page(who, JobsQuery(parent=job_id, limit=limit))[0]

    def enqueue(self, who: Principal, request: EnqueueRequest) -> Job:
        """Store a job; a non-admin's job is always its own, an admin's defaults to its owner."""
        options = request.options()
        if not who.admin or ("owner" not in options and who.owner is not None):
            options["owner"] = who.owner
        if options.get("owner") is None:
            options.pop("owner", None)
        parent = options.get("parent")
        if parent is not None:
            try:
                self.get(who, parent)
            except JobNotFound:
                raise InvalidInput(f"no job {parent!r} to be the parent",
                                   [{"loc": ["parent"], "msg": "no such job", "type": "not_found"}]
                                   ) from None
        return self.mill.enqueue(request.task, request.args, request.kwargs, **options)

    def cancel(self, who: Principal, job_id: str, reason: str | None = None) -> Job:
        self.get(who, job_id)
        return self.mill.cancel(job_id, reason)

    def retry(self, who: Principal, job_id: str) -> Job:
        self.get(who, job_id)
        return self.mill.retry(job_id)

    def delete(self, who: Principal, job_id: str) -> None:
        self.get(who, job_id)
        if not self.mill.delete(job_id):
            raise JobNotFound(job_id)

    def logs(self, who: Principal, job_id: str, limit: int | None = None) -> list[LogRecord]:
        self.get(who, job_id)
        return self.mill.logs(job_id, limit)

    def follow(self, who: Principal, job_id: str, log_tail: int | None) -> tuple[Job, list[LogRecord]]:
        """One look at a job for a live view: the job, then (if asked) its last `log_tail` lines,
        read after it, so a terminal job's lines are all there."""
        job = self.get(who, job_id)
        return job, (self.mill.logs(job_id, log_tail) if log_tail else [])

    # -- tasks, queues, periodic ---------------------------------------------------------------

    def tasks(self) -> list[dict[str, Any]]:
        return self.mill.tasks()

    def stats(self, who: Principal) -> dict[str, dict[str, int]]:
        """Per queue and state: every job for an admin, a non-admin's own jobs otherwise."""
        if who.admin:
            return self.mill.stats()
        out: dict[str, dict[str, int]] = {}
        if who.owner is None:
            return out
        for job in self.mill.jobs(owner=who.owner, limit=OWN_STATS_LIMIT):
            counts = out.setdefault(job.queue, {s.value: 0 for s in STATES})
            counts[job.state.value] += 1
        return dict(sorted(out.items()))

    def queues(self, who: Principal) -> list[QueueInfo]:
        """Each queue: counts, whether it is paused, and the workers running its jobs now."""
        stats = self.stats(who)
        paused = self.mill.paused_queues() if who.admin else set()
        workers: dict[str, set[str]] = {}
        if who.admin:
            for job in self.mill.jobs(state=JobState.RUNNING, limit=1000):
                if job.worker:
                    workers.setdefault(job.queue, set()).add(job.worker)
        names = sorted(set(stats) | paused)
        empty = {s.value: 0 for s in STATES}
        return [QueueInfo(name, stats.get(name, empty), name in paused, sorted(workers.get(name, ())))
                for name in names]

    def throughput(self, who: Principal, minutes: int = 60, step: int = 5) -> list[Bucket]:
        """Jobs finished per `step` minutes over the last `minutes`, from the newest finished jobs
        (at most THROUGHPUT_SCAN of them are read)."""
        now = self.mill.now()
        start = now - timedelta(minutes=minutes)
        query = JobsQuery(state=sorted(TERMINAL), limit=min(THROUGHPUT_SCAN, 1000))
        jobs: list[Job] = []
        while len(jobs) < THROUGHPUT_SCAN:
            page, cursor = self.page(who, query)
            jobs.extend(page)
            if cursor is None or (page and page[-1].created_at < start - timedelta(days=1)):
                break
            query = query.model_copy(update={"after": cursor})
        count = minutes // step
        ok = [0] * count
        bad = [0] * count
        for job in jobs:
            if job.finished_at is None or not start <= job.finished_at <= now:
                continue
            index = min(count - 1, int((job.finished_at - start).total_seconds() // (step * 60)))
            if job.state is JobState.SUCCEEDED:
                ok[index] += 1
            else:
                bad[index] += 1
        return [Bucket(start + timedelta(minutes=step * i), ok[i], bad[i]) for i in range(count)]

    def _admin(self, who: Principal) -> None:
        if not who.admin:
            raise AccessDenied("only an admin may change queues and periodic tasks")

    def pause_queue(self, who: Principal, name: str) -> None:
        self._admin(who)
        self.mill.pause_queue(name)

    def resume_queue(self, who: Principal, name: str) -> None:
        self._admin(who)
        self.mill.resume_queue(name)

    def periodic(self) -> list[dict[str, Any]]:
        return self.mill.periodic()

    def stop_periodic(self, who: Principal, name: str) -> int:
        self._admin(who)
        return self.mill.stop_periodic(name)

    def start_periodic(self, who: Principal, name: str) -> None:
        self._admin(who)
        self.mill.start_periodic(name)
