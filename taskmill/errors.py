"""One error hierarchy for everything taskmill raises; each class's docstring is its default message."""

from __future__ import annotations

from typing import Any


class TaskmillError(Exception):
    """Something went wrong in taskmill."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownTask(TaskmillError):
    """No task is registered under that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown task {name!r}")
        self.name = name


class InvalidInput(TaskmillError):
    """The task's input is invalid."""

    def __init__(self, message: str | None = None, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors: list[dict[str, Any]] = errors or []


class PayloadError(TaskmillError):
    """A value is not strict JSON within the payload limits."""


class ScheduleError(TaskmillError):
    """The schedule (delay, time, cron expression) is impossible."""


class ConfigError(TaskmillError):
    """An option has a bad value."""


class JobNotFound(TaskmillError):
    """No job has that id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class InvalidTransition(TaskmillError):
    """The job's state does not allow that action."""


class BackendUnavailable(TaskmillError):
    """The job store cannot be reached."""


class Unauthorized(TaskmillError):
    """Sign in first: this needs a token or a session."""


class AccessDenied(TaskmillError):
    """You may not do that."""


HTTP_STATUS: dict[type[TaskmillError], int] = {
    UnknownTask: 422,
    InvalidInput: 422,
    PayloadError: 422,
    ScheduleError: 422,
    ConfigError: 422,
    JobNotFound: 404,
    InvalidTransition: 409,
    BackendUnavailable: 503,
    Unauthorized: 401,
    AccessDenied: 403,
}


def http_status(error: TaskmillError) -> int:
    """The HTTP status that answers `error` (500 for anything unlisted)."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]  # type: ignore[index]
    return 500
