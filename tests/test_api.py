"""The Python API of DESIGN.md: registering tasks and enqueuing them, with every refusal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, Field

from taskmill import (
    ConfigError,
    InvalidInput,
    JobNotFound,
    JobState,
    Mill,
    PayloadError,
    ScheduleError,
    Task,
    UnknownTask,
)
from taskmill.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def mill(sqlite_url: str, clock: FakeClock) -> Iterator[Mill]:
    with Mill(sqlite_url, clock=clock) as m:
        yield m


def test_a_function_task_is_named_after_the_function_and_enqueues_with_its_arguments(mill: Mill) -> None:
    @mill.task
    def resize(ctx: object, path: str, width: int = 100) -> None: ...

    job = resize.enqueue("a.png", width=20)
    assert (job.task, job.args, job.kwargs, job.state) == ("resize", ["a.png"], {"width": 20}, "queued")
    assert job.owner is None and job.progress == 0 and job.attempts_left == 13
    assert mill.get(job.id) is not None


def test_a_second_task_under_a_taken_name_is_refused(mill: Mill) -> None:
    @mill.task
    def once(ctx: object) -> None: ...

    with pytest.raises(ConfigError, match="already registered"):
        mill.task(name="once")(lambda ctx: None)


def test_unknown_or_missing_arguments_are_refused_and_nothing_is_stored(mill: Mill) -> None:
    @mill.task
    def greet(ctx: object, name: str) -> None: ...

    with pytest.raises(InvalidInput):
        greet.enqueue()
    with pytest.raises(InvalidInput):
        greet.enqueue(name="x", colour="blue")
    with pytest.raises(InvalidInput) as info:
        mill.enqueue("greet", kwargs={"name": 42})
    assert info.value.errors[0]["loc"] == ["name"]
    assert mill.jobs() == []


def test_annotated_arguments_are_validated_and_revived(mill: Mill) -> None:
    seen: list[object] = []

    @mill.task
    def remind(ctx: object, when: datetime) -> None:
        seen.append(when)

    at = datetime(2026, 5, 1, tzinfo=UTC)
    job = remind.enqueue(when=at)
    assert job.kwargs == {"when": "2026-05-01T00:00:00Z"}
    mill.worker().run(burst=True)
    assert seen == [at]


def test_an_unknown_task_and_non_json_arguments_are_refused(mill: Mill) -> None:
    @mill.task
    def anything(ctx: object, value: object = None) -> None: ...

    with pytest.raises(UnknownTask):
        mill.enqueue("nope")
    with pytest.raises(PayloadError):
        anything.enqueue(value=float("nan"))
    with pytest.raises(PayloadError):
        anything.enqueue(value={1, 2})
    assert mill.jobs() == []


class ImportInput(BaseModel):
    path: str
    limit: int = Field(default=10, ge=1)


def test_a_class_task_validates_its_input_model_at_enqueue(mill: Mill) -> None:
    @mill.task(queue="imports")
    class ImportProducts(Task):
        def run(self, ctx: object, input: ImportInput) -> dict[str, object]:
            return {"path": input.path, "limit": input.limit}

    job = ImportProducts.enqueue(path="a.csv")
    assert (job.queue, job.kwargs) == ("imports", {"path": "a.csv", "limit": 10})
    with pytest.raises(InvalidInput) as info:
        ImportProducts.enqueue(path="a.csv", limit=0)
    assert info.value.errors[0]["loc"] == ["limit"]
    mill.worker().run(burst=True)
    assert job.refresh().result == {"path": "a.csv", "limit": 10}
    schema = next(t for t in mill.tasks() if t["name"] == "ImportProducts")["input_schema"]
    assert set(schema["properties"]) == {"path", "limit"}


def test_before_enqueue_can_refuse_and_nothing_is_stored(mill: Mill) -> None:
    @mill.task
    class Guarded(Task):
        def before_enqueue(self, input: ImportInput) -> None:
            if input.path.startswith("/"):
                raise InvalidInput("absolute paths are not allowed")

        def run(self, ctx: object, input: ImportInput) -> None: ...

    with pytest.raises(InvalidInput, match="absolute"):
        Guarded.enqueue(path="/etc/passwd")
    assert mill.jobs() == []


def test_delays_and_times_schedule_the_job(mill: Mill, clock: FakeClock) -> None:
    @mill.task
    def later(ctx: object) -> None: ...

    in_five = later.enqueue_in("5m")
    assert in_five.state is JobState.SCHEDULED
    assert in_five.scheduled_at == clock() + timedelta(minutes=5)
    at = later.enqueue_at(clock() + timedelta(hours=1))
    assert at.scheduled_at == clock() + timedelta(hours=1)
    past = later.enqueue_at(clock() - timedelta(days=1))
    assert past.state is JobState.QUEUED and past.scheduled_at == clock()


@pytest.mark.parametrize("options", [
    {"delay": -1}, {"delay": "soon"}, {"at": datetime(2026, 1, 1)},
    {"delay": 5, "at": datetime(2026, 1, 1, tzinfo=UTC)},
])
def test_impossible_schedules_are_refused(mill: Mill, options: dict[str, object]) -> None:
    @mill.task
    def task(ctx: object) -> None: ...

    with pytest.raises(ScheduleError):
        mill.enqueue("task", **options)
    assert mill.jobs() == []


@pytest.mark.parametrize("options", [
    {"unique": "yes"}, {"retry": "often"}, {"priority": "high"}, {"queue": "*"}, {"owner": 42},
    {"colour": "red"},
])
def test_bad_enqueue_options_are_config_errors(mill: Mill, options: dict[str, object]) -> None:
    @mill.task
    def task(ctx: object) -> None: ...

    with pytest.raises(ConfigError):
        mill.enqueue("task", **options)


@pytest.mark.parametrize("options", [
    {"retry": -3}, {"timeout": "never"}, {"every": "5m", "cron": "* * * * *"}, {"bogus": 1},
    {"max_iterations": 0}, {"no_retry": ["ValueError"]},
])
def test_bad_task_options_are_config_errors_at_registration(mill: Mill, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        mill.task(**options)(lambda ctx: None)


def test_options_on_a_handle_apply_to_its_enqueues(mill: Mill) -> None:
    @mill.task
    def export(ctx: object, fmt: str) -> None: ...

    job = export.with_options(owner="user:42", queue="urgent", title="Export",
                              result_url="/exports/{id}").enqueue(fmt="csv")
    assert (job.owner, job.queue, job.title, job.result_url) == (
        "user:42", "urgent", "Export", "/exports/{id}")


def test_unique_returns_the_pending_duplicate_and_reschedule_moves_it(mill: Mill, clock: FakeClock) -> None:
    @mill.task
    def sync(ctx: object, account: int) -> None: ...

    first = sync.with_options(unique=True, owner="u1", delay="1h").enqueue(account=1)
    again = sync.with_options(unique=True, owner="u1").enqueue(account=1)
    other_owner = sync.with_options(unique=True, owner="u2").enqueue(account=1)
    assert again.id == first.id and other_owner.id != first.id
    moved = sync.with_options(unique="reschedule", owner="u1").enqueue(account=1)
    assert moved.id == first.id and moved.state is JobState.QUEUED and moved.scheduled_at == clock()


def test_enqueue_many_stores_all_or_none(mill: Mill) -> None:
    @mill.task
    def square(ctx: object, n: int) -> int:
        return n * n

    jobs = square.enqueue_many([{"n": i} for i in range(5)], priority=3)
    assert [j.kwargs["n"] for j in jobs] == list(range(5)) and all(j.priority == 3 for j in jobs)
    with pytest.raises(InvalidInput) as info:
        mill.enqueue_many([{"task": "square", "kwargs": {"n": 1}},
                           {"task": "square", "kwargs": {"n": "x"}}])
    assert info.value.errors[0]["loc"][0] == 1
    assert len(mill.jobs()) == 5


def test_management_calls_on_unknown_ids(mill: Mill) -> None:
    assert mill.get("12345") is None and mill.get("not-an-id") is None
    with pytest.raises(JobNotFound):
        mill.cancel("12345")
    with pytest.raises(JobNotFound):
        mill.retry("12345")
    assert mill.delete("12345") is False


def test_stats_list_every_state_for_every_queue(mill: Mill) -> None:
    @mill.task(queue="mail")
    def send(ctx: object) -> None: ...

    send.enqueue()
    stats = mill.stats()
    assert stats["mail"] == {"scheduled": 0, "queued": 1, "running": 0, "succeeded": 0,
                             "failed": 0, "cancelled": 0}


async def _enqueue_and_wait(mill: Mill) -> tuple[str, str]:
    job = await mill.enqueue_async("double", kwargs={"n": 4})
    fetched = await mill.get_async(job.id)
    assert fetched is not None
    return job.id, fetched.state.value


def test_async_twins_enqueue_and_read_without_blocking(mill: Mill) -> None:
    import asyncio

    @mill.task
    def double(ctx: object, n: int) -> int:
        return 2 * n

    job_id, state = asyncio.run(_enqueue_and_wait(mill))
    assert state == "queued"
    worker = mill.worker()
    worker.start()
    try:
        job = mill.get(job_id)
        assert job is not None
        done = asyncio.run(job.wait_async(timeout=30))
        assert done.result == 8
    finally:
        worker.stop()
