"""Jobs as plain typed data: the states, the error, the log record, and the job handle."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .mill import Mill


class JobState(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
PENDING = frozenset({JobState.SCHEDULED, JobState.QUEUED})
STATES = tuple(JobState)


@dataclass(frozen=True, slots=True)
class JobError:
    """Why an attempt failed: the exception's type, message and traceback."""

    type: str
    message: str
    traceback: str = ""

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> JobError | None:
        if data is None:
            return None
        return cls(str(data.get("type", "")), str(data.get("message", "")),
                   str(data.get("traceback", "")))


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One line a job logged."""

    at: datetime
    level: str
    message: str
    attempt: int
    job_id: str = ""


@dataclass(slots=True, eq=False)
class Job:
    """One requested run of a task: its data as stored, and the calls that manage it."""

    id: str
    task: str
    queue: str
    state: JobState
    args: list[Any]
    kwargs: dict[str, Any]
    created_at: datetime
    scheduled_at: datetime
    priority: int = 0
    attempts: int = 0
    max_attempts: int = 13
    retry: dict[str, Any] = field(default_factory=dict)
    progress: float = 0.0
    progress_message: str | None = None
    result: Any = None
    error: JobError | None = None
    owner: str | None = None
    title: str | None = None
    parent: str | None = None
    result_url: str | None = None
    return_url: str | None = None
    unique_key: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    iterations: int = 0
    max_iterations: int = 1000
    state_data: Any = None
    timeout: float | None = None
    cancel_requested: bool = False
    cancel_reason: str | None = None
    claim_token: str | None = None
    worker: str | None = None
    lease_until: datetime | None = None
    # Not stored: how enqueue treats a pending duplicate (None, "return" or "reschedule").
    unique: str | None = field(default=None, repr=False)
    _mill: Mill | None = field(default=None, repr=False)

    @property
    def attempts_left(self) -> int:
        return max(0, self.max_attempts - self.attempts)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def _bound(self) -> Mill:
        if self._mill is None:
            raise RuntimeError("this job is not bound to a Mill")
        return self._mill

    def _take(self, fresh: Job) -> None:
        """Make this handle show `fresh`, the same job as read again."""
        for name in self.__dataclass_fields__:
            if name not in ("_mill", "unique"):
                setattr(self, name, getattr(fresh, name))

    def refresh(self) -> Job:
        """Reload this handle from the store."""
        fresh = self._bound()._require(self.id)
        self._take(fresh)
        return self

    def wait(self, timeout: float | None = None, poll: float = 0.05) -> Job:
        """Block until the job is terminal; `TimeoutError` if it is not by `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh()
            if self.finished:
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} is still {self.state.value} after {timeout}s")
            time.sleep(min(poll * 2, 0.5) if deadline is None else
                       max(0.0, min(poll, deadline - time.monotonic())))
            poll = min(poll * 1.5, 0.5)

    async def wait_async(self, timeout: float | None = None, poll: float = 0.05) -> Job:
        """`wait` for async code: never blocks the event loop."""
        mill = self._bound()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            fresh = await mill.get_async(self.id)
            if fresh is None:
                raise RuntimeError(f"job {self.id} was deleted while waiting for it")
            self._take(fresh)
            if self.finished:
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} is still {self.state.value} after {timeout}s")
            await asyncio.sleep(poll)
            poll = min(poll * 1.5, 0.5)

    def logs(self, limit: int | None = None) -> list[LogRecord]:
        return self._bound().logs(self.id, limit=limit)

    def cancel(self, reason: str | None = None) -> Job:
        fresh = self._bound().cancel(self.id, reason)
        self._take(fresh)
        return self

    def to_json(self) -> dict[str, Any]:
        """The job as JSON, under the handle's field names."""
        return {
            "id": self.id, "task": self.task, "queue": self.queue, "state": self.state.value,
            "args": self.args, "kwargs": self.kwargs, "priority": self.priority,
            "attempts": self.attempts, "max_attempts": self.max_attempts,
            "attempts_left": self.attempts_left, "progress": self.progress,
            "progress_message": self.progress_message, "result": self.result,
            "error": self.error.to_json() if self.error else None, "owner": self.owner,
            "title": self.title, "parent": self.parent, "result_url": self.result_url,
            "return_url": self.return_url, "iterations": self.iterations,
            "cancel_reason": self.cancel_reason,
            "created_at": _iso(self.created_at), "scheduled_at": _iso(self.scheduled_at),
            "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class Update:
    """A guarded write: store `job`'s mutable fields only while the stored job is still in
    `expect_state` under `expect_token` (the claim token for running jobs, else None)."""

    job: Job
    expect_state: JobState
    expect_token: str | None
