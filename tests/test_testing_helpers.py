"""The helpers of `taskmill.testing` that users call in their own tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from taskmill import ConfigError, JobState, Mill
from taskmill.testing import DEFAULT_START, FakeClock, drain


def test_a_fake_clock_stands_still_until_it_is_moved() -> None:
    clock = FakeClock()
    assert clock() == clock.now() == DEFAULT_START
    assert clock.advance("1h30m") == DEFAULT_START + timedelta(minutes=90)
    assert clock.advance(0.25) == DEFAULT_START + timedelta(minutes=90, milliseconds=250)
    assert clock.set(datetime(2031, 1, 1, tzinfo=UTC)) == clock() == datetime(2031, 1, 1, tzinfo=UTC)


def test_a_fake_clock_keeps_utc_and_refuses_naive_times_and_going_back() -> None:
    clock = FakeClock(datetime(2030, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))))
    assert clock() == datetime(2030, 1, 1, tzinfo=UTC) and clock().utcoffset() == timedelta(0)
    with pytest.raises(ValueError):
        clock.set(datetime(2029, 1, 1, tzinfo=UTC))
    with pytest.raises(ConfigError):
        clock.advance("-1s")
    with pytest.raises(Exception):  # noqa: B017 - ScheduleError: a naive time's zone is a guess
        FakeClock(datetime(2030, 1, 1))


def test_drain_runs_what_is_ready_and_leaves_later_retries_for_a_moved_clock() -> None:
    # given a task that fails once and is retried ten minutes later, on a fake clock
    clock = FakeClock()
    mill = Mill("memory://", clock=clock)
    calls: list[datetime] = []

    @mill.task(retry=[(1, "10m")])
    def flaky(ctx: object) -> str:
        calls.append(clock())
        if len(calls) == 1:
            raise OSError("down")
        return "up"

    job = flaky.enqueue()
    # when drained, the first attempt fails and the retry waits
    assert drain(mill)["retried"] == 1 and job.refresh().state is JobState.SCHEDULED
    # then, once the clock has moved, the next drain runs it
    clock.advance("10m")
    assert drain(mill)["succeeded"] == 1
    assert (job.refresh().state, job.result, calls) == (
        JobState.SUCCEEDED, "up", [DEFAULT_START, DEFAULT_START + timedelta(minutes=10)])


def test_drain_serves_only_the_queues_given_and_leaves_paused_ones() -> None:
    mill = Mill("memory://", clock=FakeClock())

    @mill.task
    def work(ctx: object) -> None:
        pass

    mine = work.with_options(queue="mine").enqueue()
    theirs = work.with_options(queue="theirs").enqueue()
    held = work.with_options(queue="held").enqueue()
    mill.pause_queue("held")
    assert drain(mill, queues="mine,held")["succeeded"] == 1
    assert [j.refresh().state for j in (mine, theirs, held)] == [
        JobState.SUCCEEDED, JobState.QUEUED, JobState.QUEUED]
    assert drain(mill)["succeeded"] == 1 and held.refresh().state is JobState.QUEUED
