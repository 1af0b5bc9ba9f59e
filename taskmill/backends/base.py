"""The backend contract: a small set of atomic, guarded operations that every store performs.

A backend decides no policy: `taskmill.transitions` computes every new job and the backend writes
it only while the guard holds. Every method takes `now` so tests can drive a fake clock. No driver
type or driver exception crosses this boundary: each backend raises `BackendUnavailable` instead.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..job import Job, JobState, LogRecord, Update

# An application's own open connection (set by `Mill.using(conn)`): a backend that supports it
# writes enqueues on it, inside the application's transaction, without committing.
external_connection: ContextVar[Any] = ContextVar("taskmill_external_connection", default=None)


@dataclass(frozen=True, slots=True)
class JobFilter:
    states: tuple[JobState, ...] = ()
    queue: str | None = None
    task: str | None = None
    owner: str | None = None
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class NewLog:
    job_id: str
    attempt: int
    at: datetime
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class PeriodicState:
    enabled: bool
    last_slot: datetime | None


class Backend(abc.ABC):
    """Where jobs live. Subclasses: memory, sqlite, postgres, redis."""

    url: str

    @abc.abstractmethod
    def enqueue(self, jobs: Sequence[Job], now: datetime) -> list[Job]:
        """Store `jobs` in one atomic step (all or none) and return them with their ids.

        A job whose `unique` is "return" or "reschedule" is matched against pending (scheduled or
        queued) jobs with the same `unique_key`; the match is returned instead of a new job, with
        its `scheduled_at` (and state) moved to the new job's for "reschedule". The match is
        race-free: two callers enqueuing the same unique job at once store one job.
        """

    @abc.abstractmethod
    def claim(self, queues: Sequence[str] | None, limit: int, worker: str, token: str,
              lease_until: datetime, now: datetime) -> list[Job]:
        """Atomically move up to `limit` queued jobs of `queues` (None: all) that are not in a paused
        queue to `running`, highest priority first, then oldest `scheduled_at`, then oldest id:
        attempts + 1, `started_at` now, the lease and claim token set. Each job is claimed once."""

    @abc.abstractmethod
    def apply(self, updates: Sequence[Update], now: datetime) -> list[bool]:
        """Write each update's job (its mutable fields) in one atomic step, each only if the stored
        job is still in `expect_state` under `expect_token`; says which were written.

        One more guard: a write that would send a running job back to scheduled or queued without
        the cancel request the store holds for it is refused (its writer had not seen the cancel,
        and decides again once it has)."""

    def apply_and_claim(self, updates: Sequence[Update], now: datetime,
                        queues: Sequence[str] | None, limit: int, worker: str, token: str,
                        lease_until: datetime) -> tuple[list[bool], list[Job]]:
        """`apply(updates)`, then `claim(...)` of up to `limit` jobs, each guarded as alone: how a
        busy worker hands back finished jobs and takes the next ones. A store that can do both in
        one transaction (one commit) overrides this; the default takes two."""
        applied = self.apply(updates, now)
        return applied, (self.claim(queues, limit, worker, token, lease_until, now) if limit else [])

    @abc.abstractmethod
    def heartbeat(self, leases: Sequence[tuple[str, str]], lease_until: datetime,
                  now: datetime) -> list[str]:
        """Extend the leases of (job id, claim token) pairs that still hold; returns the ids whose
        lease was lost (the job was rescued or handed elsewhere)."""

    @abc.abstractmethod
    def set_progress(self, job_id: str, token: str, progress: float, message: str | None,
                     now: datetime) -> bool:
        """Set a running job's progress; applies only while it runs under `token`."""

    @abc.abstractmethod
    def append_logs(self, records: Sequence[NewLog]) -> None:
        """Store log lines of jobs, in one atomic step."""

    @abc.abstractmethod
    def cancel_requests(self, job_ids: Sequence[str]) -> dict[str, str | None]:
        """Of the given running jobs, those asked to cancel, with the reason."""

    @abc.abstractmethod
    def get(self, job_id: str) -> Job | None:
        """The job with that id, or None."""

    @abc.abstractmethod
    def query(self, where: JobFilter, limit: int, after: str | None) -> tuple[list[Job], str | None]:
        """Jobs matching `where`, newest first, and the cursor of the next page (None at the end)."""

    @abc.abstractmethod
    def logs(self, job_id: str, limit: int | None) -> list[LogRecord]:
        """A job's log lines, oldest first (the last `limit` if given)."""

    @abc.abstractmethod
    def delete(self, job_id: str) -> bool:
        """Delete a job that is not running, with its logs; False if there was none to delete."""

    @abc.abstractmethod
    def delete_where(self, states: Sequence[JobState], task: str | None, args: str | None,
                     kwargs: str | None, queue: str | None, count: int | None) -> int:
        """Delete up to `count` jobs in `states` (never running ones) matching the task, queue and
        the canonical JSON text of args/kwargs where given; returns how many."""

    @abc.abstractmethod
    def stats(self) -> dict[str, dict[str, int]]:
        """Per queue, the number of jobs in each state (states with none may be left out)."""

    @abc.abstractmethod
    def promote_due(self, now: datetime, limit: int) -> int:
        """Move up to `limit` scheduled jobs whose time has come to `queued`; returns how many."""

    @abc.abstractmethod
    def next_due(self) -> datetime | None:
        """The earliest `scheduled_at` of a scheduled job."""

    @abc.abstractmethod
    def expired(self, now: datetime, limit: int) -> list[Job]:
        """Running jobs whose lease ran out before `now`."""

    @abc.abstractmethod
    def prune(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` finished jobs that finished before `before`; returns how many."""

    @abc.abstractmethod
    def set_paused(self, queue: str, paused: bool) -> None:
        """Pause or resume a queue; kept in the store."""

    @abc.abstractmethod
    def paused(self) -> set[str]:
        """The paused queues."""

    @abc.abstractmethod
    def periodic_states(self) -> dict[str, PeriodicState]:
        """Each known periodic task's state."""

    @abc.abstractmethod
    def periodic_register(self, name: str, slot: datetime) -> None:
        """Record a periodic task seen for the first time, as on with `slot` as its last slot;
        a known one is left as it is (a stopped one stays stopped)."""

    @abc.abstractmethod
    def periodic_set(self, name: str, enabled: bool, slot: datetime) -> None:
        """Turn a periodic task on or off. Turned on from off (or new), it starts after `slot`:
        missed slots are not caught up; turning off keeps its last slot."""

    @abc.abstractmethod
    def periodic_fire(self, name: str, slot: datetime, job: Job, now: datetime) -> Job | None:
        """Atomically: if the task is on and its last slot is before `slot`, record `slot` as its
        last and store `job`. The slot is the key: it fires once however many workers try."""

    def notify(self) -> None:  # noqa: B027 - optional
        """Wake workers waiting for work (after enqueue, promote or cancel)."""

    def wait_for_work(self, timeout: float) -> None:
        """Block until `notify` is called somewhere, or `timeout` seconds pass."""
        import time

        time.sleep(timeout)

    def durability_warning(self) -> str | None:
        """What a worker should warn of at start when this store may lose acknowledged jobs."""
        return None

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""

    def after_fork(self) -> None:  # noqa: B027 - optional
        """Drop connections inherited through fork(); the child opens its own."""

    @staticmethod
    def describe_job_fields() -> tuple[str, ...]:
        return MUTABLE_FIELDS


# The fields `apply` writes; the rest are fixed at enqueue.
MUTABLE_FIELDS: tuple[str, ...] = (
    "state", "scheduled_at", "attempts", "max_attempts", "progress", "progress_message", "result",
    "error", "started_at", "finished_at", "iterations", "state_data", "cancel_requested",
    "cancel_reason", "claim_token", "worker", "lease_until",
)


def canonical(value: Any) -> str:
    """Canonical JSON, as args and kwargs are stored (to compare them by text)."""
    from ..payload import dumps

    return dumps(value)
