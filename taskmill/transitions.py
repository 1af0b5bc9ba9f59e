"""The whole state machine, as pure functions: (job, outcome, now) -> the job to write.

Backends only store what these return, guarded by the state (and claim token) it was computed
from; no backend decides what a failure, a cancel or a retry means.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from . import retry as retry_policy
from .errors import InvalidTransition
from .job import PENDING, TERMINAL, Job, JobError, JobState, Update

MAX_ITERATIONS_REASON = "max_iterations"


@dataclass(frozen=True, slots=True)
class Succeeded:
    result: Any


@dataclass(frozen=True, slots=True)
class Failed:
    error: JobError
    retryable: bool = True
    delay: float | None = None  # set by Retry(delay=...): the next try's time instead of the policy's


@dataclass(frozen=True, slots=True)
class Continued:
    state: Any
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Aborted:
    """The run stopped because a cancel was asked for."""

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class HandedBack:
    """The worker is shutting down: the attempt did not happen, the job goes back to the queue."""


Outcome = Succeeded | Failed | Continued | Aborted | HandedBack


def _released(job: Job, **changes: Any) -> Job:
    """`job` out of `running`: no lease, no token."""
    return replace(job, claim_token=None, worker=None, lease_until=None, unique=None, **changes)


def finish(job: Job, outcome: Outcome, now: datetime, rng: random.Random | None = None) -> Job:
    """The job after a run of it ended with `outcome`; `job` is the running job as claimed."""
    if isinstance(outcome, Succeeded):
        return _released(job, state=JobState.SUCCEEDED, result=outcome.result, progress=100.0,
                         finished_at=now, iterations=job.iterations + 1, cancel_requested=False)
    if isinstance(outcome, HandedBack) and job.cancel_requested:
        return _released(job, state=JobState.CANCELLED, finished_at=now,
                         iterations=job.iterations + 1)
    if isinstance(outcome, HandedBack):
        return _released(job, state=JobState.QUEUED, attempts=max(0, job.attempts - 1),
                         scheduled_at=now, cancel_requested=False)
    if isinstance(outcome, Aborted):
        return _released(job, state=JobState.CANCELLED, finished_at=now,
                         cancel_reason=job.cancel_reason or outcome.reason,
                         iterations=job.iterations + 1)
    if isinstance(outcome, Continued):
        iterations = job.iterations + 1
        if job.cancel_requested:
            return _released(job, state=JobState.CANCELLED, finished_at=now,
                             iterations=iterations, state_data=outcome.state)
        if iterations >= job.max_iterations:
            error = JobError(MAX_ITERATIONS_REASON,
                             f"the task asked to continue after {iterations} iterations, "
                             f"the most it may run")
            return _released(job, state=JobState.FAILED, finished_at=now, error=error,
                             iterations=iterations, state_data=outcome.state)
        at = now + timedelta(seconds=outcome.delay)
        return _released(job, state=JobState.SCHEDULED if outcome.delay > 0 else JobState.QUEUED,
                         scheduled_at=at, iterations=iterations, state_data=outcome.state,
                         attempts=max(0, job.attempts - 1))
    return _failed(job, outcome, now, rng)


def _failed(job: Job, outcome: Failed, now: datetime, rng: random.Random | None) -> Job:
    if job.cancel_requested:  # asked to stop, and it did: by failing, or by its worker dying
        return _released(job, state=JobState.CANCELLED, error=outcome.error, finished_at=now,
                         iterations=job.iterations + 1)
    if outcome.retryable and job.attempts < job.max_attempts:
        wait = outcome.delay
        if wait is None:
            wait = retry_policy.delay(job.retry, job.attempts, rng)
        return _released(job, state=JobState.SCHEDULED, error=outcome.error,
                         scheduled_at=now + timedelta(seconds=wait))
    return _released(job, state=JobState.FAILED, error=outcome.error, finished_at=now,
                     iterations=job.iterations + 1)


def rescue(job: Job, now: datetime, rng: random.Random | None = None) -> Update:
    """A running job whose lease ran out: the same transition as a failed attempt."""
    error = JobError("LeaseExpired", f"worker {job.worker} stopped heart-beating; its lease ran "
                     f"out at {job.lease_until.isoformat() if job.lease_until else '?'}")
    return Update(finish(job, Failed(error), now, rng), JobState.RUNNING, job.claim_token)


def cancel(job: Job, reason: str | None, now: datetime) -> Update:
    """A pending job is cancelled now; a running one is asked to stop (`ctx.cancelled`)."""
    if job.state in PENDING:
        new = replace(job, state=JobState.CANCELLED, finished_at=now, cancel_reason=reason,
                      unique=None)
        return Update(new, job.state, None)
    if job.state is JobState.RUNNING:
        new = replace(job, cancel_requested=True, cancel_reason=reason, unique=None)
        return Update(new, job.state, job.claim_token)
    raise InvalidTransition(f"job {job.id} is {job.state.value}: only a scheduled, queued or "
                            f"running job can be cancelled")


def retry(job: Job, now: datetime) -> Update:
    """A finished job runs again, with exactly one more attempt; its tries keep counting."""
    if job.state not in TERMINAL:
        raise InvalidTransition(f"job {job.id} is {job.state.value}: only a succeeded, failed or "
                                f"cancelled job can be retried")
    new = replace(job, state=JobState.QUEUED, scheduled_at=now, finished_at=None, result=None,
                  error=None, progress=0.0, progress_message=None, cancel_requested=False,
                  cancel_reason=None, max_attempts=job.attempts + 1, iterations=0,
                  state_data=None, unique=None)
    return Update(new, job.state, None)


def initial_state(scheduled_at: datetime, now: datetime) -> JobState:
    return JobState.SCHEDULED if scheduled_at > now else JobState.QUEUED
