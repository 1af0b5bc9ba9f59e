"""The typed requests and responses of the HTTP API (and the shapes the dashboard and GraphQL reuse)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from ..job import Job, JobState, LogRecord

MAX_PAGE = 1000
INT64 = 2**63


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ---------------------------------------------------------------------------------

class JobsQuery(BaseModel):
    """Filters of `GET /api/jobs`, as `mill.jobs` takes them, and the page."""

    model_config = ConfigDict(extra="ignore")

    state: list[JobState] | None = Field(default=None,
                                         description="one or more states (repeat or comma-separate)")
    queue: str | None = None
    task: str | None = None
    owner: str | None = None
    parent: str | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    after: str | None = Field(default=None, description="the `next` cursor of the previous page")


class LogsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int | None = Field(None, ge=1, le=10_000, description="only the last `limit` lines")


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    logs: bool = Field(False, description="also send each new log line as a `log` event")


RetryStep = tuple[int, float | str]


class EnqueueRequest(Model):
    """The body of `POST /api/jobs`: a task name, its arguments and any option of `mill.enqueue`."""

    task: str
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    queue: str | None = None
    delay: float | str | None = Field(default=None, description='seconds, or a duration like "5m"')
    at: datetime | None = Field(default=None, description="timezone-aware time; never runs before it")
    priority: int | None = Field(default=None, ge=-INT64, lt=INT64)
    retry: int | bool | list[RetryStep] | RetryStep | None = None
    owner: str | None = None
    title: str | None = None
    parent: str | None = None
    unique: bool | Literal["reschedule"] | None = None
    result_url: str | None = None
    return_url: str | None = None

    @field_validator("at")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                raise ValueError("the time is out of range") from None
        return value

    def options(self) -> dict[str, Any]:
        """The enqueue options that were given."""
        return {k: v for k, v in self.model_dump(exclude={"task", "args", "kwargs"},
                                                  exclude_unset=True).items() if v is not None}


class CancelRequest(Model):
    reason: str | None = None


# -- responses --------------------------------------------------------------------------------

class JobErrorOut(Model):
    type: str
    message: str
    traceback: str


class JobOut(Model):
    """A job, under the handle's field names."""

    id: str
    task: str
    queue: str
    state: JobState
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int
    attempts: int
    max_attempts: int
    attempts_left: int
    progress: float
    progress_message: str | None
    result: Any
    error: JobErrorOut | None
    owner: str | None
    title: str | None
    parent: str | None
    result_url: str | None
    return_url: str | None
    iterations: int
    cancel_reason: str | None
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    scheduled_at: str = Field(json_schema_extra={"format": "date-time"})
    started_at: str | None = Field(json_schema_extra={"format": "date-time"})
    finished_at: str | None = Field(json_schema_extra={"format": "date-time"})

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls.model_validate(job.to_json())


class JobList(Model):
    items: list[JobOut]
    next: str | None


class LogOut(Model):
    at: str = Field(json_schema_extra={"format": "date-time"})
    level: str
    message: str
    attempt: int

    @classmethod
    def of(cls, record: LogRecord) -> LogOut:
        return cls(at=record.at.isoformat(), level=record.level, message=record.message,
                   attempt=record.attempt)


class LogList(Model):
    items: list[LogOut]
    next: None = None


class TaskOut(Model):
    """A task definition, as `mill.tasks()` tells it."""

    model_config = ConfigDict(extra="allow")

    name: str
    queue: str
    priority: int
    retry: dict[str, Any]
    max_attempts: int
    no_retry: list[str]
    timeout: float | None
    max_iterations: int
    is_async: bool
    periodic: dict[str, Any] | None
    input_schema: dict[str, Any]
    doc: str


class TaskList(Model):
    items: list[TaskOut]
    next: None = None


class QueueCounts(Model):
    scheduled: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int


class Stats(RootModel[dict[str, QueueCounts]]):
    """Per queue, the number of jobs in each state."""


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(Model):
    type: str
    message: str
    fields: list[FieldError]


class ErrorOut(Model):
    error: ErrorBody


class Health(Model):
    ok: bool
