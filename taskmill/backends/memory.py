"""The reference backend: jobs in a dict under one lock. For tests and for reading the contract."""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from ..job import PENDING, TERMINAL, Job, JobState, LogRecord, Update
from ..payload import encode_unchecked
from .base import MUTABLE_FIELDS, Backend, JobFilter, NewLog, PeriodicState


class MemoryBackend(Backend):
    """Everything in this process's memory: gone when it exits. `memory://`."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Condition()
        self._jobs: dict[int, Job] = {}
        self._logs: dict[int, list[LogRecord]] = {}
        self._ids = itertools.count(1)
        self._paused: set[str] = set()
        self._periodic: dict[str, PeriodicState] = {}
        self._wakes = 0
        self._seen = 0

    def _copy(self, job: Job) -> Job:
        return copy.deepcopy(job)

    def enqueue(self, jobs: Sequence[Job], now: datetime) -> list[Job]:
        out: list[Job] = []
        for job in jobs:  # what a store cannot write fails the whole batch before any is stored
            encode_unchecked([job.args, job.kwargs, job.retry])
        with self._lock:
            for job in jobs:
                if job.unique and job.unique_key:
                    match = next((j for j in sorted(self._jobs.values(), key=lambda j: int(j.id))
                                  if j.unique_key == job.unique_key and j.state in PENDING), None)
                    if match is not None:
                        if job.unique == "reschedule":
                            match.scheduled_at, match.state = job.scheduled_at, job.state
                        out.append(self._copy(match))
                        continue
                stored = replace(self._copy(job), id=str(next(self._ids)), unique=None, _mill=None)
                self._jobs[int(stored.id)] = stored
                job.id = stored.id
                out.append(job)
        return out

    def claim(self, queues: Sequence[str] | None, limit: int, worker: str, token: str,
              lease_until: datetime, now: datetime) -> list[Job]:
        with self._lock:
            ready = [j for j in self._jobs.values() if j.state is JobState.QUEUED
                     and (queues is None or j.queue in queues) and j.queue not in self._paused]
            ready.sort(key=lambda j: (-j.priority, j.scheduled_at, int(j.id)))
            out = []
            for job in ready[:limit]:
                job.state, job.attempts, job.started_at = JobState.RUNNING, job.attempts + 1, now
                job.claim_token, job.worker, job.lease_until = token, worker, lease_until
                job.cancel_requested = False
                out.append(self._copy(job))
            return out

    def apply(self, updates: Sequence[Update], now: datetime) -> list[bool]:
        done = []
        with self._lock:
            for update in updates:
                stored = self._jobs.get(int(update.job.id))
                ok = (stored is not None and stored.state is update.expect_state
                      and stored.claim_token == update.expect_token
                      and not _drops_cancel(stored, update.job))
                if ok and stored is not None:
                    for name in MUTABLE_FIELDS:
                        setattr(stored, name, copy.deepcopy(getattr(update.job, name)))
                done.append(ok)
        return done

    def heartbeat(self, leases: Sequence[tuple[str, str]], lease_until: datetime,
                  now: datetime) -> list[str]:
        lost = []
        with self._lock:
            for job_id, token in leases:
                job = self._jobs.get(int(job_id))
                if job and job.state is JobState.RUNNING and job.claim_token == token:
                    job.lease_until = lease_until
                else:
                    lost.append(job_id)
        return lost

    def set_progress(self, job_id: str, token: str, progress: float, message: str | None,
                     now: datetime) -> bool:
        with self._lock:
            job = self._jobs.get(int(job_id))
            if job and job.state is JobState.RUNNING and job.claim_token == token:
                job.progress, job.progress_message = progress, message
                return True
            return False

    def append_logs(self, records: Sequence[NewLog]) -> None:
        with self._lock:
            for r in records:
                if int(r.job_id) in self._jobs:
                    self._logs.setdefault(int(r.job_id), []).append(
                        LogRecord(r.at, r.level, r.message, r.attempt, r.job_id))

    def cancel_requests(self, job_ids: Sequence[str]) -> dict[str, str | None]:
        with self._lock:
            return {i: j.cancel_reason for i in job_ids
                    if (j := self._jobs.get(int(i))) is not None
                    and j.state is JobState.RUNNING and j.cancel_requested}

    def get(self, job_id: str) -> Job | None:
        try:
            key = int(job_id)
        except (TypeError, ValueError):
            return None
        with self._lock:
            job = self._jobs.get(key)
            return None if job is None else self._copy(job)

    def query(self, where: JobFilter, limit: int, after: str | None) -> tuple[list[Job], str | None]:
        with self._lock:
            found = [j for j in self._jobs.values()
                     if (not where.states or j.state in where.states)
                     and (where.queue is None or j.queue == where.queue)
                     and (where.task is None or j.task == where.task)
                     and (where.owner is None or j.owner == where.owner)
                     and (where.parent is None or j.parent == where.parent)
                     and (after is None or int(j.id) < _int(after))]
            found.sort(key=lambda j: -int(j.id))
            page = [self._copy(j) for j in found[:limit]]
        return page, (page[-1].id if len(found) > limit else None)

    def logs(self, job_id: str, limit: int | None) -> list[LogRecord]:
        with self._lock:
            records = list(self._logs.get(_int(job_id), []))
        return records if limit is None else records[-limit:] if limit else []

    def delete(self, job_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(_int(job_id))
            if job is None or job.state is JobState.RUNNING:
                return False
            del self._jobs[int(job.id)]
            self._logs.pop(int(job.id), None)
            return True

    def delete_where(self, states: Sequence[JobState], task: str | None, args: str | None,
                     kwargs: str | None, queue: str | None, count: int | None) -> int:
        with self._lock:
            doomed = [j for j in sorted(self._jobs.values(), key=lambda j: int(j.id))
                      if j.state in states and j.state is not JobState.RUNNING
                      and (task is None or j.task == task)
                      and (args is None or encode_unchecked(j.args) == args)
                      and (kwargs is None or encode_unchecked(j.kwargs) == kwargs)
                      and (queue is None or j.queue == queue)]
            for job in doomed[:count]:
                del self._jobs[int(job.id)]
                self._logs.pop(int(job.id), None)
            return len(doomed[:count])

    def stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for job in self._jobs.values():
                per = out.setdefault(job.queue, {})
                per[job.state.value] = per.get(job.state.value, 0) + 1
        return out

    def promote_due(self, now: datetime, limit: int) -> int:
        with self._lock:
            due = sorted((j for j in self._jobs.values()
                          if j.state is JobState.SCHEDULED and j.scheduled_at <= now),
                         key=lambda j: j.scheduled_at)[:limit]
            for job in due:
                job.state = JobState.QUEUED
            return len(due)

    def next_due(self) -> datetime | None:
        with self._lock:
            return min((j.scheduled_at for j in self._jobs.values()
                        if j.state is JobState.SCHEDULED), default=None)

    def expired(self, now: datetime, limit: int) -> list[Job]:
        with self._lock:
            found = [self._copy(j) for j in self._jobs.values() if j.state is JobState.RUNNING
                     and j.lease_until is not None and j.lease_until < now]
        found.sort(key=lambda j: j.lease_until or now)
        return found[:limit]

    def prune(self, before: datetime, limit: int) -> int:
        with self._lock:
            old = sorted((j for j in self._jobs.values() if j.state in TERMINAL
                          and j.finished_at is not None and j.finished_at < before),
                         key=lambda j: j.finished_at or before)[:limit]
            for job in old:
                del self._jobs[int(job.id)]
                self._logs.pop(int(job.id), None)
            return len(old)

    def set_paused(self, queue: str, paused: bool) -> None:
        with self._lock:
            (self._paused.add if paused else self._paused.discard)(queue)

    def paused(self) -> set[str]:
        with self._lock:
            return set(self._paused)

    def periodic_states(self) -> dict[str, PeriodicState]:
        with self._lock:
            return dict(self._periodic)

    def periodic_register(self, name: str, slot: datetime) -> None:
        with self._lock:
            self._periodic.setdefault(name, PeriodicState(True, slot))

    def periodic_set(self, name: str, enabled: bool, slot: datetime) -> None:
        with self._lock:
            old = self._periodic.get(name)
            if enabled:
                keep = old is not None and old.enabled
                self._periodic[name] = PeriodicState(True, old.last_slot if keep and old else slot)
            else:
                self._periodic[name] = PeriodicState(False, old.last_slot if old else slot)

    def periodic_fire(self, name: str, slot: datetime, job: Job, now: datetime) -> Job | None:
        with self._lock:
            state = self._periodic.get(name)
            if state is None or not state.enabled or (
                    state.last_slot is not None and state.last_slot >= slot):
                return None
            self._periodic[name] = PeriodicState(True, slot)
            return self.enqueue([job], now)[0]

    def notify(self) -> None:
        with self._lock:
            self._wakes += 1
            self._lock.notify_all()

    def wait_for_work(self, timeout: float) -> None:
        """Returns at once if notified since the last wait: no wake-up is lost in between."""
        with self._lock:
            self._lock.wait_for(lambda: self._wakes != self._seen, timeout)
            self._seen = self._wakes


def _drops_cancel(stored: Job, new: Job) -> bool:
    """A write from a running job that would run it again without the cancel asked meanwhile."""
    return (stored.state is JobState.RUNNING and stored.cancel_requested
            and not new.cancel_requested and new.state in PENDING)


def _int(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
