"""taskmill: background jobs for Python, on SQLite by default, PostgreSQL or Redis at scale."""

from .errors import (
    BackendUnavailable,
    ConfigError,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    PayloadError,
    ScheduleError,
    TaskmillError,
    UnknownTask,
)
from .job import Job, JobError, JobState, LogRecord
from .mill import Mill
from .signals import Cancelled, Continue, Retry
from .task import Task
from .worker import Context, Worker

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "Cancelled",
    "ConfigError",
    "Context",
    "Continue",
    "InvalidInput",
    "InvalidTransition",
    "Job",
    "JobError",
    "JobNotFound",
    "JobState",
    "LogRecord",
    "Mill",
    "PayloadError",
    "Retry",
    "ScheduleError",
    "Task",
    "TaskmillError",
    "UnknownTask",
    "Worker",
]
