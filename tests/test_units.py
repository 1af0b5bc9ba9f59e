"""Pure pieces: durations, retry policies, the payload policy, the state machine, schedules."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from taskmill import (
    ConfigError,
    InvalidTransition,
    JobError,
    JobState,
    PayloadError,
    ScheduleError,
    payload,
    retry,
    transitions,
)
from taskmill.job import Job
from taskmill.schedule import Schedule
from taskmill.timeutil import aware, delay_seconds, seconds

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def running_job(**changes: object) -> Job:
    job = Job(id="1", task="t", queue="default", state=JobState.RUNNING, args=[], kwargs={},
              created_at=NOW, scheduled_at=NOW, attempts=1, max_attempts=3,
              retry=retry.parse(2), claim_token="tok", worker="w", lease_until=NOW)
    for key, value in changes.items():
        setattr(job, key, value)
    return job


# -- durations ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("250ms", 0.25), ("5s", 5), ("5m", 300), ("1h30m", 5400), ("1d", 86400), (7, 7),
    (1.5, 1.5), (timedelta(minutes=2), 120),
])
def test_durations_read_strings_numbers_and_timedeltas(text: object, expected: float) -> None:
    assert seconds(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "5", "five minutes", "5x", -1, 0, True, float("nan"), "99999d"])
def test_a_bad_or_non_positive_duration_is_refused_with_config_error(bad: object) -> None:
    with pytest.raises(ConfigError):
        seconds(bad)  # type: ignore[arg-type]


def test_a_negative_delay_is_a_schedule_error_but_zero_is_fine() -> None:
    assert delay_seconds(0) == 0
    with pytest.raises(ScheduleError):
        delay_seconds(-5)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ScheduleError, match="naive"):
        aware(datetime(2026, 1, 1))
    assert aware(datetime(2026, 1, 1, tzinfo=UTC)).tzinfo is UTC


# -- retry policies ----------------------------------------------------------------------

def test_retry_count_gives_growing_jittered_backoff_capped_at_an_hour() -> None:
    policy = retry.parse(12)
    rng = random.Random(1)
    delays = [retry.delay(policy, k, rng) for k in range(1, 13)]
    assert 12 <= delays[0] <= 18
    assert 24 <= delays[1] <= 36
    assert all(d <= 3600 * 1.2 for d in delays)
    assert retry.max_attempts(policy) == 13


def test_retry_steps_apply_in_order_and_count_their_tries() -> None:
    policy = retry.parse([(1, "5m"), (1, "20m"), (3, "1h"), (1, "1d")])
    assert [retry.delay(policy, k) for k in range(1, 7)] == [300, 1200, 3600, 3600, 3600, 86400]
    assert retry.max_attempts(policy) == 7


def test_a_single_step_and_lucee_style_dicts_are_accepted() -> None:
    assert retry.parse((2, "10s")) == {"steps": [[2, 10.0]]}
    assert retry.parse({"tries": 1, "interval": "1m"}) == {"steps": [[1, 60.0]]}
    assert retry.parse([{"tries": 1, "interval": 5}]) == {"steps": [[1, 5.0]]}


@pytest.mark.parametrize("bad", [True, -1, "3", [], [(0, "5m")], [(1, "soon")], [(1,)], {"tries": 1}])
def test_a_bad_retry_spec_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError):
        retry.parse(bad)  # type: ignore[arg-type]


def test_no_retry_means_one_attempt() -> None:
    assert retry.max_attempts(retry.parse(0)) == 1
    assert retry.max_attempts(retry.parse(False)) == 1


# -- payload policy ----------------------------------------------------------------------

def test_payload_round_trips_strict_json() -> None:
    value = {"b": [1, 2.5, None, True, "ünïcødé ✓"], "a": {"big": 2**70}}
    assert payload.loads(payload.dumps(value)) == value


@pytest.mark.parametrize(("bad", "why"), [
    (float("nan"), "not JSON"), (float("inf"), "not JSON"), ("a\x00b", "NUL"),
    ("\ud800", "surrogate"), ({1: "x"}, "not a string"), ({"x": {1, 2}}, "set"),
    (object(), "object"),
])
def test_payload_refuses_what_is_not_strict_json(bad: object, why: str) -> None:
    with pytest.raises(PayloadError, match=why):
        payload.dumps(bad)


def test_payload_refuses_deep_nesting_and_big_values() -> None:
    deep: list[object] = []
    for _ in range(70):
        deep = [deep]
    with pytest.raises(PayloadError, match="nested"):
        payload.dumps(deep)
    with pytest.raises(PayloadError, match="limit"):
        payload.dumps("x" * 2000, limit=1000)


# -- the state machine -------------------------------------------------------------------

def test_success_releases_the_lease_and_sets_the_result() -> None:
    new = transitions.finish(running_job(), transitions.Succeeded({"ok": 1}), NOW)
    assert (new.state, new.result, new.claim_token, new.lease_until) == (
        JobState.SUCCEEDED, {"ok": 1}, None, None)
    assert new.finished_at == NOW and new.progress == 100


def test_a_failure_with_attempts_left_is_scheduled_for_its_retry_time() -> None:
    new = transitions.finish(running_job(), transitions.Failed(JobError("E", "x")), NOW,
                             random.Random(0))
    assert new.state is JobState.SCHEDULED
    assert NOW + timedelta(seconds=12) <= new.scheduled_at <= NOW + timedelta(seconds=18)
    assert new.error == JobError("E", "x") and new.finished_at is None


def test_a_failure_without_attempts_left_or_not_retryable_is_final() -> None:
    last = transitions.finish(running_job(attempts=3), transitions.Failed(JobError("E", "x")), NOW)
    assert last.state is JobState.FAILED
    final = transitions.finish(running_job(), transitions.Failed(JobError("E", "x"), retryable=False),
                               NOW)
    assert final.state is JobState.FAILED


def test_retry_signal_delay_overrides_the_policy() -> None:
    new = transitions.finish(running_job(), transitions.Failed(JobError("Retry", ""), delay=30), NOW)
    assert new.scheduled_at == NOW + timedelta(seconds=30)


def test_continue_is_not_an_attempt_and_keeps_state() -> None:
    new = transitions.finish(running_job(), transitions.Continued({"page": 2}, 0), NOW)
    assert (new.state, new.attempts, new.iterations, new.state_data) == (
        JobState.QUEUED, 0, 1, {"page": 2})
    later = transitions.finish(running_job(), transitions.Continued(None, 60), NOW)
    assert later.state is JobState.SCHEDULED and later.scheduled_at == NOW + timedelta(minutes=1)


def test_continue_past_max_iterations_fails_with_that_reason() -> None:
    new = transitions.finish(running_job(iterations=4, max_iterations=5),
                             transitions.Continued(None), NOW)
    assert new.state is JobState.FAILED
    assert new.error is not None and new.error.type == transitions.MAX_ITERATIONS_REASON


def test_a_cancel_asked_turns_continue_and_failure_into_cancelled() -> None:
    asked = running_job(cancel_requested=True, cancel_reason="stop")
    assert transitions.finish(asked, transitions.Continued(None), NOW).state is JobState.CANCELLED
    failed = transitions.finish(asked, transitions.Failed(JobError("E", "x")), NOW)
    assert failed.state is JobState.CANCELLED and failed.cancel_reason == "stop"


def test_a_handed_back_attempt_is_not_counted() -> None:
    new = transitions.finish(running_job(attempts=2), transitions.HandedBack(), NOW)
    assert (new.state, new.attempts, new.claim_token) == (JobState.QUEUED, 1, None)


def test_rescue_is_a_failed_attempt_guarded_by_the_claim_token() -> None:
    update = transitions.rescue(running_job(attempts=3), NOW)
    assert update.expect_state is JobState.RUNNING and update.expect_token == "tok"
    assert update.job.state is JobState.FAILED and update.job.error is not None
    assert update.job.error.type == "LeaseExpired"


def test_cancel_of_a_finished_job_and_retry_of_an_unfinished_one_are_refused() -> None:
    done = running_job(state=JobState.SUCCEEDED)
    with pytest.raises(InvalidTransition):
        transitions.cancel(done, None, NOW)
    with pytest.raises(InvalidTransition):
        transitions.retry(running_job(), NOW)


def test_retry_of_a_failed_job_gives_exactly_one_more_attempt() -> None:
    failed = running_job(state=JobState.FAILED, attempts=3, claim_token=None)
    update = transitions.retry(failed, NOW)
    assert update.job.state is JobState.QUEUED
    assert update.job.max_attempts == 4 and update.job.attempts == 3


# -- periodic schedules ------------------------------------------------------------------

def test_every_slots_are_aligned_to_the_clock() -> None:
    schedule = Schedule.parse("5m", None, None)
    assert schedule is not None
    at = datetime(2026, 1, 1, 12, 7, 30, tzinfo=UTC)
    assert schedule.latest(at) == datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    assert schedule.next_after(at) == datetime(2026, 1, 1, 12, 10, tzinfo=UTC)


def test_cron_slots_are_utc_unless_a_zone_is_given() -> None:
    utc = Schedule.parse(None, "0 3 * * *", None)
    paris = Schedule.parse(None, "0 3 * * *", "Europe/Paris")
    assert utc is not None and paris is not None
    at = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert utc.latest(at) == datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    assert paris.latest(at) == datetime(2026, 1, 2, 2, 0, tzinfo=UTC)
    assert utc.latest(datetime(2026, 1, 2, 3, 0, tzinfo=UTC)) == datetime(2026, 1, 2, 3, 0, tzinfo=UTC)


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(None, "61 * * * *", None)
    with pytest.raises(ConfigError):
        Schedule.parse("5m", "* * * * *", None)
    with pytest.raises(ConfigError):
        Schedule.parse(None, "* * * * *", "Mars/Olympus")


def test_a_job_handed_back_after_a_cancel_was_asked_ends_cancelled() -> None:
    asked = running_job(cancel_requested=True, cancel_reason="stop")
    new = transitions.finish(asked, transitions.HandedBack(), NOW)
    assert (new.state, new.cancel_reason, new.claim_token) == (JobState.CANCELLED, "stop", None)


def test_shared_texts_encode_one_object_once_and_never_answer_for_another() -> None:
    from taskmill.payload import SharedTexts, encode_unchecked

    # given a memo over an encoder that counts its calls, bounded at two values
    calls: list[object] = []

    def counting(value: object) -> str | None:
        calls.append(value)
        return encode_unchecked(value)

    texts = SharedTexts(counting, size=2)
    policy = {"backoff": 0}
    # when one object is asked for twice, then it is encoded once
    assert texts(policy) == texts(policy) == '{"backoff":0}' and len(calls) == 1
    # and an equal but distinct object, or more objects than the bound, are encoded afresh
    other = {"backoff": 1}
    assert texts(other) == '{"backoff":1}' and texts({"x": 1}) == '{"x":1}'
    assert texts(policy) == '{"backoff":0}' and len(calls) == 4
