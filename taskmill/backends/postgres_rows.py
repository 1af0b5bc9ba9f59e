"""Rows of the PostgreSQL backend: a job as the parameters of its insert or its guarded update,
a row as a job, and JSON as jsonb keeps it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ..job import Job, JobError, JobState, Update
from ..payload import SharedTexts, encode_unchecked

_BIGINT = 1 << 63
# A JSON string, or a number written with an exponent (Python writes floats from 1e16 up so).
_EXPONENT = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?[eE][+-]?\d+')


def _whole_float(match: re.Match[str]) -> str:
    token = match.group()
    if token[0] == '"':
        return token
    number = float(token)
    return format(number, ".1f") if number.is_integer() else token


def jsonb_text(value: Any) -> str | None:
    """JSON text for a jsonb column. jsonb keeps numbers as decimals and prints `1e+16` back as
    `10000000000000000`, which reads as an int: such floats are written out in full with `.0`
    (exactly the same value), so a float comes back a float."""
    text = encode_unchecked(value)
    if text is None or ("e+" not in text and "E+" not in text):
        return text
    return _EXPONENT.sub(_whole_float, text)


INSERT_COLUMNS = ("task", "queue", "state", "args", "kwargs", "priority", "max_attempts", "retry",
                  "owner", "title", "parent", "result_url", "return_url", "unique_key",
                  "created_at", "scheduled_at", "max_iterations", "timeout")

APPLY_COLUMNS = ("id", "expect_state", "expect_token", "state", "scheduled_at", "attempts",
                 "max_attempts", "progress", "progress_message", "result", "error", "started_at",
                 "finished_at", "iterations", "state_data", "cancel_requested", "cancel_reason",
                 "claim_token", "worker", "lease_until")


_policy_text = SharedTexts(jsonb_text)


def insert_params(job: Job) -> tuple[Any, ...]:
    """The insert's values of a new job."""
    return (job.task, job.queue, job.state.value, jsonb_text(job.args), jsonb_text(job.kwargs),
            job.priority, job.max_attempts, _policy_text(job.retry), job.owner, job.title,
            None if job.parent is None else int(job.parent), job.result_url, job.return_url,
            job.unique_key, job.created_at, job.scheduled_at, job.max_iterations,
            None if job.timeout is None else float(job.timeout))


def apply_params(update: Update) -> tuple[Any, ...]:
    j = update.job
    return (bigint_or(j.id, -1), update.expect_state.value, update.expect_token, j.state.value,
            j.scheduled_at, j.attempts, j.max_attempts, float(j.progress), j.progress_message,
            jsonb_text(j.result), error_json(j.error), j.started_at,
            j.finished_at, j.iterations, jsonb_text(j.state_data), bool(j.cancel_requested),
            j.cancel_reason, j.claim_token, j.worker, j.lease_until)


def error_json(error: JobError | None) -> str | None:
    """An attempt's error as jsonb can hold it. An exception's message or traceback may hold a
    NUL character, which PostgreSQL refuses in any text: it is written as `\\x00` (as job logs
    write it), or the worker's every write of that outcome would fail."""
    if error is None:
        return None
    return jsonb_text({k: v.replace("\x00", "\\x00") for k, v in error.to_json().items()})


def bigint_or(value: Any, default: Any) -> Any:
    """A job id as the bigint it is stored as, or `default` for what cannot be one."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if -_BIGINT <= number < _BIGINT else default


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def to_job(row: dict[str, Any]) -> Job:
    return Job(
        id=str(row["id"]), task=row["task"], queue=row["queue"], state=JobState(row["state"]),
        args=row["args"], kwargs=row["kwargs"],
        created_at=row["created_at"].astimezone(UTC),
        scheduled_at=row["scheduled_at"].astimezone(UTC),
        priority=row["priority"], attempts=row["attempts"], max_attempts=row["max_attempts"],
        retry=row["retry"], progress=row["progress"], progress_message=row["progress_message"],
        result=row["result"], error=JobError.from_json(row["error"]), owner=row["owner"],
        title=row["title"], parent=None if row["parent"] is None else str(row["parent"]),
        result_url=row["result_url"], return_url=row["return_url"], unique_key=row["unique_key"],
        started_at=_utc(row["started_at"]), finished_at=_utc(row["finished_at"]),
        iterations=row["iterations"], max_iterations=row["max_iterations"],
        state_data=row["state_data"], timeout=row["timeout"],
        cancel_requested=row["cancel_requested"], cancel_reason=row["cancel_reason"],
        claim_token=row["claim_token"], worker=row["worker"], lease_until=_utc(row["lease_until"]),
    )
