"""What the Redis backend promises beyond the conformance suite: its key layout, claims that never
pop, indexes that stay true to the jobs, bounded memory, wake-ups. The shared Redis, one key prefix
per test (the `redis_url` fixture); never FLUSHDB."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskmill import BackendUnavailable, ConfigError, Mill
from taskmill.backends.base import JobFilter, NewLog
from taskmill.backends.memory import MemoryBackend
from taskmill.job import Job, JobState, Update
from taskmill.transitions import Continued, Failed, Succeeded, cancel, finish, rescue, retry

redis = pytest.importorskip("redis")
from redis.crc import key_slot  # noqa: E402

from taskmill.backends.redis import RedisBackend  # noqa: E402

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def backend(redis_url: str) -> Iterator[RedisBackend]:
    store = RedisBackend(redis_url)
    yield store
    store.close()


def noop(ctx: Any, n: int = 0) -> int:
    return n


def make_mill(backend: Any) -> Mill:
    """A mill over `backend` with two tasks: noop (queue default) and other (queue other)."""
    mill = Mill(backend=backend)
    mill.task(name="noop")(noop)
    mill.task(name="other", queue="other")(noop)
    return mill


@pytest.fixture
def mill(backend: RedisBackend) -> Mill:
    return make_mill(backend)


def raw(backend: RedisBackend) -> Any:
    return backend.client


def keys_of(backend: RedisBackend) -> list[str]:
    return sorted(raw(backend).scan_iter(match=backend.key + "*", count=1000))


def check_indexes(backend: RedisBackend) -> None:
    """Every index holds exactly what the job hashes say, and the counters count it."""
    r, k = raw(backend), backend.key
    jobs = {job.id: job for job in backend.query(JobFilter(), 10_000, None)[0]}
    hashes = {key[len(k) + 4:] for key in r.scan_iter(match=k + "job:*", count=1000)}
    assert hashes == set(jobs)  # no job is out of the state sets that queries go through
    counted: dict[str, int] = {}
    for job in jobs.values():
        field = f"{job.state.value}:{job.queue}"
        counted[field] = counted.get(field, 0) + 1
        for kind in ("queue", "task", "owner", "parent"):
            value = getattr(job, kind)
            if value is not None:
                assert r.zscore(f"{k}i:{kind}:{value}", job.id) == int(job.id)
    assert {f: int(n) for f, n in r.hgetall(k + "stats").items()} == counted
    for state in JobState:
        assert set(r.zrange(f"{k}s:{state.value}", 0, -1)) == {
            i for i, j in jobs.items() if j.state is state}
    queued = {i for i, j in jobs.items() if j.state is JobState.QUEUED}
    in_queues = {m.rsplit(":", 1)[1].lstrip("0") for q in {j.queue for j in jobs.values()}
                 for m in r.zrange(f"{k}q:{q}", 0, -1)}
    assert in_queues == queued
    def by_time(name: str) -> set[str]:
        return {m.lstrip("0") for m in r.zrange(k + name, 0, -1)}

    assert by_time("scheduled") == {i for i, j in jobs.items() if j.state is JobState.SCHEDULED}
    assert by_time("running") == {i for i, j in jobs.items() if j.state is JobState.RUNNING}
    assert by_time("finished") == {i for i, j in jobs.items()
                                   if j.finished and j.finished_at is not None}
    pending = {i for i, j in jobs.items() if j.state in (JobState.QUEUED, JobState.SCHEDULED)}
    assert {m.rsplit("|", 1)[1].lstrip("0") for m in r.zrange(k + "pending", 0, -1)} == pending


# -- key layout ----------------------------------------------------------------------------

def test_every_key_of_an_installation_shares_one_hash_tag_and_so_one_cluster_slot(
        backend: RedisBackend, mill: Mill) -> None:
    # given jobs in every kind of index: queued, scheduled, running, finished, logs, a pause
    mill.enqueue("noop", owner="user:1", parent="1")
    mill.enqueue("other", delay=3600)
    running = backend.claim(["default"], 1, "w", "tok", at(30), at(0))[0]
    backend.append_logs([NewLog(running.id, 1, at(0), "INFO", "hello")])
    backend.apply([Update(finish(running, Succeeded(1), at(1)), JobState.RUNNING, "tok")], at(1))
    mill.pause_queue("other")
    # then every key starts with "{prefix}:" and all hash to the slot of that tag
    keys = keys_of(backend)
    assert len(keys) > 10
    assert all(key.startswith("{" + backend.prefix + "}:") for key in keys)
    assert {key_slot(key.encode()) for key in keys} == {key_slot(backend.key.encode())}


def test_a_prefix_keeps_two_installations_in_one_database_apart(redis_url: str) -> None:
    # given two installations in the same database, under two prefixes
    a = make_mill(RedisBackend(redis_url))
    b = make_mill(RedisBackend(redis_url.replace("prefix=", "prefix=b")))
    try:
        # when each enqueues
        a.enqueue("noop")
        b.enqueue("noop")
        b.enqueue("noop")
        # then each sees only its own jobs
        assert len(a.jobs()) == 1
        assert len(b.jobs()) == 2
    finally:
        b.delete_all()
        raw(b.backend).delete(*keys_of(b.backend))  # type: ignore[arg-type]
        a.close()
        b.close()


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379/0?prefix={x}", "redis://127.0.0.1:6379/0?prefix=a*b",
    "redis://127.0.0.1:6379/0?prefix=x&bogus=1", "http://127.0.0.1:6379/0",
])
def test_a_bad_redis_url_is_refused_with_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        RedisBackend(url)


def test_an_unreachable_redis_raises_backend_unavailable_not_a_driver_error() -> None:
    # given a URL where nothing listens (port 1 is never a Redis)
    backend = RedisBackend("redis://127.0.0.1:1/0?prefix=nowhere&socket_connect_timeout=1")
    # then every kind of call says the store is unavailable
    with pytest.raises(BackendUnavailable):
        backend.get("1")
    with pytest.raises(BackendUnavailable):
        backend.claim(None, 1, "w", "t", at(30), at(0))
    with pytest.raises(BackendUnavailable):
        backend.wait_for_work(0.1)
    with pytest.raises(BackendUnavailable):
        backend.durability_warning()


def test_a_forked_child_opens_its_own_connection_and_the_parent_keeps_its_own(
        backend: RedisBackend, mill: Mill) -> None:
    # given a parent that has used its connection
    mill.enqueue("noop")
    # when a forked child drops what it inherited and enqueues
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            backend.after_fork()
            mill.enqueue("noop")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    # then the child's job is stored, and the parent's connection still works
    assert os.waitstatus_to_exitcode(status) == 0
    mill.enqueue("noop")
    assert len(mill.jobs()) == 3


# -- claims never pop ----------------------------------------------------------------------

def test_a_claimed_job_stays_recorded_under_its_lease_until_it_is_completed_or_rescued(
        backend: RedisBackend, mill: Mill) -> None:
    # given a claimed job whose worker then dies without a word
    job = mill.enqueue("noop")
    claimed = backend.claim(None, 10, "w", "tok", at(30), at(0))
    assert [j.id for j in claimed] == [job.id]
    # then the job is still stored in full, running, in the running index by its lease
    assert backend.get(job.id) is not None
    assert raw(backend).zscore(backend.key + "running", job.id.zfill(20)) == pytest.approx(
        (at(30) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)
    # and once its lease runs out it is found and rescued back to a retry
    expired = backend.expired(at(31), 10)
    assert [j.id for j in expired] == [job.id]
    assert backend.apply([rescue(expired[0], at(31))], at(31)) == [True]
    assert backend.get(job.id).state is JobState.SCHEDULED  # type: ignore[union-attr]
    check_indexes(backend)


def test_apply_and_claim_writes_the_finished_jobs_then_claims_the_next_in_one_call(
        backend: RedisBackend, mill: Mill) -> None:
    # given two running jobs, one of them since rescued elsewhere, and two more queued
    first, second = (mill.enqueue("noop", kwargs={"n": n}) for n in (1, 2))
    running = backend.claim(None, 2, "w", "tok", at(30), at(0))
    queued = [mill.enqueue("noop", kwargs={"n": n}) for n in (3, 4)]
    backend.apply([rescue(running[1], at(31))], at(31))
    # when the worker writes both outcomes and claims three jobs in the same call
    continued = finish(running[0], Continued({"step": 1}), at(32))
    done = finish(running[1], Succeeded(2), at(32))
    applied, claimed = backend.apply_and_claim(
        [Update(continued, JobState.RUNNING, "tok"), Update(done, JobState.RUNNING, "tok")],
        at(32), None, 3, "w", "tok2", at(62))
    # then the update under a live claim was written and the stale one refused, and the claim
    # took the queued jobs and then the one the update queued again (its time is the latest),
    # as apply then claim would have done
    assert applied == [True, False]
    assert [j.id for j in claimed] == [queued[0].id, queued[1].id, first.id]
    assert (claimed[2].state, claimed[2].state_data, claimed[2].claim_token) == (
        JobState.RUNNING, {"step": 1}, "tok2")
    assert backend.get(second.id).state is JobState.SCHEDULED  # type: ignore[union-attr]
    # and a call with no slot free, or no queue, only writes
    assert backend.apply_and_claim([], at(33), None, 0, "w", "t3", at(63)) == ([], [])
    assert backend.apply_and_claim([], at(33), [], 5, "w", "t3", at(63)) == ([], [])
    check_indexes(backend)


def test_claim_orders_negative_priorities_after_zero_and_positive_ones(
        backend: RedisBackend, mill: Mill) -> None:
    # given jobs of priorities -5, 3, 0, -1, 3 enqueued in that order
    made = [mill.enqueue("noop", priority=p) for p in (-5, 3, 0, -1, 3)]
    # when they are claimed one at a time
    order = [backend.claim(None, 1, "w", f"t{i}", at(30), at(0))[0].id for i in range(5)]
    # then highest priority first, first in first out within one
    assert order == [made[1].id, made[4].id, made[2].id, made[3].id, made[0].id]


# -- the indexes stay true to the jobs -----------------------------------------------------

def test_indexes_and_counters_match_the_jobs_and_the_reference_backend_after_a_random_workload(
        backend: RedisBackend, mill: Mill) -> None:
    # given the same random sequence of operations run on Redis and on the memory reference
    reference = MemoryBackend()
    ref_mill = make_mill(reference)
    rng = random.Random(6)
    now = at(0)
    for step in range(400):
        now += timedelta(seconds=rng.choice([0, 1, 5]))
        op = rng.random()
        if op < 0.3:
            specs = [{"task": rng.choice(["noop", "other"]), "kwargs": {"n": rng.randrange(4)},
                      "priority": rng.randrange(-2, 3), "delay": rng.choice([0, 0, 3, 10]),
                      "owner": rng.choice([None, "u1", "u2"]),
                      "unique": rng.choice([False, True, "reschedule"])}
                     for _ in range(rng.randrange(1, 4))]
            jobs = [[m.build(s["task"], kwargs=s["kwargs"], now=now,
                             **{k: v for k, v in s.items() if k not in ("task", "kwargs")})
                     for s in specs] for m in (mill, ref_mill)]
            got = [b.enqueue(js, now) for b, js in ((backend, jobs[0]), (reference, jobs[1]))]
            assert [j.id for j in got[0]] == [j.id for j in got[1]]
        elif op < 0.5:
            queues = rng.choice([None, ["default"], ["other", "default"]])
            limit = rng.randrange(1, 4)
            got = [b.claim(queues, limit, "w", f"tok{step}", now + timedelta(seconds=20), now)
                   for b in (backend, reference)]
            assert [j.id for j in got[0]] == [j.id for j in got[1]]
        elif op < 0.7:
            running = reference.query(JobFilter(states=(JobState.RUNNING,)), 100, None)[0]
            if running:
                job = rng.choice(running)
                outcome = rng.choice([Succeeded(1), Failed(_error()), Continued({"i": 1}),
                                      Continued(None, delay=5.0)])
                new = finish(job, outcome, now, random.Random(step))
                update = Update(new, JobState.RUNNING, job.claim_token)
                if rng.random() < 0.5:
                    assert backend.apply([update], now) == reference.apply([update], now)
                else:  # the worker's one-call write-and-claim, against apply then claim
                    queues = rng.choice([None, ["default"], ["other"]])
                    lease, limit = now + timedelta(seconds=20), rng.randrange(0, 3)
                    applied, claimed = backend.apply_and_claim(
                        [update], now, queues, limit, "w", f"tok{step}", lease)
                    assert applied == reference.apply([update], now)
                    assert [j.id for j in claimed] == [j.id for j in reference.claim(
                        queues, limit, "w", f"tok{step}", lease, now)]
        elif op < 0.78:
            limit = rng.randrange(1, 5)
            assert backend.promote_due(now, limit) == reference.promote_due(now, limit)
        elif op < 0.84:
            for job in reference.expired(now, 100):
                update = rescue(job, now, random.Random(step))
                assert backend.apply([update], now) == reference.apply([update], now)
        elif op < 0.9:
            jobs = reference.query(JobFilter(), 1000, None)[0]
            if jobs:
                job = rng.choice(jobs)
                update = retry(job, now) if job.finished else cancel(job, "why", now)
                assert backend.apply([update], now) == reference.apply([update], now)
        elif op < 0.94:
            jobs = reference.query(JobFilter(), 1000, None)[0]
            if jobs:
                job_id = rng.choice(jobs).id
                assert backend.delete(job_id) == reference.delete(job_id)
        elif op < 0.97:
            args = (tuple(rng.sample(list(JobState), 2)), rng.choice([None, "noop"]), None,
                    rng.choice([None, '{"n":1}']), None, rng.choice([None, 1, 2]))
            assert backend.delete_where(*args) == reference.delete_where(*args)  # type: ignore[arg-type]
        else:
            assert backend.prune(now - timedelta(seconds=20), 3) == reference.prune(
                now - timedelta(seconds=20), 3)
    # then both hold the same jobs, field for field, and count them alike
    mine = backend.query(JobFilter(), 10_000, None)[0]
    theirs = reference.query(JobFilter(), 10_000, None)[0]
    assert [_fields(j) for j in mine] == [_fields(j) for j in theirs]
    assert backend.stats() == {q: {s: n for s, n in per.items() if n}
                               for q, per in reference.stats().items()}
    assert backend.next_due() == reference.next_due()
    check_indexes(backend)


def _error() -> Any:
    from taskmill.job import JobError

    return JobError("ValueError", "boom", "tb")


def _fields(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in job.__dataclass_fields__
            if name not in ("_mill", "unique")}


# -- memory stays bounded ------------------------------------------------------------------

def test_pruned_and_deleted_jobs_leave_no_key_or_index_entry_behind(
        backend: RedisBackend, mill: Mill) -> None:
    # given finished jobs with logs, a deleted job, and every index touched on the way
    for n in range(20):
        mill.enqueue("noop" if n % 2 else "other", kwargs={"n": n}, owner=f"u{n % 3}",
                     parent="1")
    doomed = mill.enqueue("noop", delay=60)
    while jobs := backend.claim(None, 7, "w", "tok", at(30), at(0)):
        backend.append_logs([NewLog(j.id, 1, at(0), "INFO", "line") for j in jobs])
        backend.apply([Update(finish(j, Succeeded(None), at(1)), JobState.RUNNING, "tok")
                       for j in jobs], at(1))
    assert mill.delete(doomed.id)
    # when the finished jobs are pruned after their retention
    assert backend.prune(at(2), 10_000) == 20
    # then only the id counter is left: no job, log, index or counter key
    assert keys_of(backend) == [backend.key + "seq"]


# -- all or none, validated inside the script -----------------------------------------------

def test_a_batch_whose_last_row_the_script_refuses_writes_nothing(
        backend: RedisBackend, mill: Mill) -> None:
    # given a batch whose last job has an empty queue name: the script checks every row first
    good = [mill.build("noop", kwargs={"n": n}) for n in range(3)]
    bad = replace(mill.build("noop"), queue="")
    # when it is enqueued, it fails
    with pytest.raises(BackendUnavailable, match="no queue"):
        backend.enqueue([*good, bad], at(0))
    # then nothing was written, not even an id
    assert keys_of(backend) == []


def test_enqueue_many_of_ten_thousand_jobs_is_one_call_that_stores_them_all(
        backend: RedisBackend, mill: Mill) -> None:
    # when 10,000 jobs are enqueued in one batch
    jobs = mill.enqueue_many([{"task": "noop", "kwargs": {"n": n}} for n in range(10_000)])
    # then they all got consecutive ids, are counted, and claim in order
    assert [int(j.id) for j in jobs] == list(range(1, 10_001))
    assert backend.stats() == {"default": {"queued": 10_000}}
    assert [j.kwargs["n"] for j in backend.claim(None, 3, "w", "t", at(30), at(0))] == [0, 1, 2]


# -- wake-ups --------------------------------------------------------------------------------

def test_a_worker_waiting_for_work_wakes_at_once_when_a_job_is_enqueued_elsewhere(
        redis_url: str, mill: Mill) -> None:
    # given a worker-side connection waiting for work for up to 5 seconds
    waiter = RedisBackend(redis_url)
    waiter.wait_for_work(0.01)  # subscribed from here on
    woke: list[float] = []
    thread = threading.Thread(target=lambda: (waiter.wait_for_work(5), woke.append(time.monotonic())))
    thread.start()
    time.sleep(0.1)
    # when another connection enqueues a job
    start = time.monotonic()
    mill.enqueue("noop")
    thread.join(5)
    # then the wait ends well before its timeout
    assert woke and woke[0] - start < 0.5
    waiter.close()


def test_a_wake_up_of_another_prefix_does_not_end_the_wait(redis_url: str) -> None:
    # given a waiter on one prefix and a backend of another
    waiter, stranger = RedisBackend(redis_url), RedisBackend(redis_url + "other")
    waiter.wait_for_work(0.01)
    # when the other prefix notifies
    stranger.notify()
    start = time.monotonic()
    waiter.wait_for_work(0.3)
    # then the waiter sleeps its full timeout
    assert time.monotonic() - start >= 0.25
    waiter.close()
    stranger.close()


def wake_ups(pubsub: Any, within: float = 0.5) -> list[Any]:
    """The messages a subscriber gets within `within` seconds."""
    got = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.05)
        if message:
            got.append(message)
    return got


def test_notify_after_a_write_that_woke_workers_sends_nothing_more(
        backend: RedisBackend, mill: Mill) -> None:
    # given a subscriber counting the wake-ups of the prefix
    pubsub = raw(backend).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(backend.key + "wake")
    pubsub.get_message(timeout=0.5)
    # when the mill enqueues (the script publishes; the facade then calls notify) and an
    # operator pauses a queue and notifies (no script published)
    mill.enqueue("noop")
    backend.set_paused("x", False)
    backend.notify()
    # then exactly two wake-ups went out
    assert len(wake_ups(pubsub)) == 2
    pubsub.close()


def test_a_notify_that_does_not_follow_a_publishing_write_at_once_still_wakes_workers(
        backend: RedisBackend, mill: Mill) -> None:
    # given a subscriber, and an enqueue made a while ago in this thread
    pubsub = raw(backend).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(backend.key + "wake")
    pubsub.get_message(timeout=0.5)
    mill.enqueue("noop")
    time.sleep(0.1)
    # when this thread notifies (as worker.stop() does, to end a wait)
    backend.notify()
    # then that notify sent a wake-up of its own: two in all
    assert len(wake_ups(pubsub)) == 2
    pubsub.close()
