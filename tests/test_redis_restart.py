"""The Redis backend against a Redis of its own (a `redis-server` started on a free port), killed
and restarted mid-test: what AOF keeps, scripts reloaded after a restart, workers that carry on,
and the durability warning. Never the shared Redis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from taskmill import BackendUnavailable, Mill

redis = pytest.importorskip("redis")
from taskmill.backends.redis import SCRIPTS, RedisBackend  # noqa: E402

SERVER = shutil.which("redis-server")


class OwnRedis:
    """One redis-server process on a free port, its data in `dir`; start, kill -9, start again."""

    def __init__(self, directory: Path, *options: str) -> None:
        self.dir = directory
        self.options = options
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0?prefix=restart&socket_timeout=5"

    def start(self) -> None:
        assert SERVER is not None
        self.process = subprocess.Popen(
            [SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye; what is on disk is what there is."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def need_server() -> None:
    """A missing redis-server skips loudly, except under CI, where it fails the run."""
    if SERVER is None:
        message = "redis-server is not installed; these tests start their own"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {message}", pytrace=False)
        pytest.skip(f"SKIPPED LOUDLY: {message}")


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    need_server()
    server = OwnRedis(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    yield server
    server.kill()


def noop(ctx: Any, n: int = 0) -> int:
    return n


def test_jobs_survive_a_kill_and_restart_of_redis_with_aof_always(aof_redis: OwnRedis) -> None:
    # given jobs in several states, acknowledged by Redis with appendfsync always
    mill = Mill(aof_redis.url)
    mill.task(name="noop")(noop)
    jobs = [mill.enqueue("noop", kwargs={"n": n}) for n in range(20)]
    later = mill.enqueue("noop", delay=3600)
    backend = mill.backend
    now = mill.now()
    claimed = backend.claim(None, 5, "w", "tok", now + timedelta(seconds=30), now)
    before = {j.id: j.state for j in mill.jobs(limit=1000)}
    # when Redis is killed and started again on the same files
    aof_redis.kill()
    with pytest.raises(BackendUnavailable):
        mill.get(jobs[0].id)
    aof_redis.start()
    # then every job is there in the state it had, the running ones under their claims
    assert {j.id: j.state for j in mill.jobs(limit=1000)} == before
    assert {j.id for j in backend.expired(now + timedelta(seconds=31), 100)} == {
        j.id for j in claimed}
    assert mill.get(later.id).state == "scheduled"  # type: ignore[union-attr]
    # and new ids carry on after the old ones (the counter was kept too)
    assert int(mill.enqueue("noop").id) == int(later.id) + 1
    mill.close()


def test_scripts_are_loaded_again_when_a_restarted_redis_has_forgotten_them(
        aof_redis: OwnRedis) -> None:
    # given a backend that has run its scripts (Redis keeps no script cache over a restart)
    backend = RedisBackend(aof_redis.url)
    mill = Mill(backend=backend)
    mill.task(name="noop")(noop)
    mill.enqueue("noop")
    aof_redis.kill()
    aof_redis.start()
    client = redis.Redis(port=aof_redis.port)
    assert not any(client.script_exists(*(s.sha for s in SCRIPTS.values())))
    # when it enqueues again
    job = mill.enqueue("noop")
    # then the call worked, through a fresh SCRIPT LOAD
    assert mill.get(job.id) is not None
    client.close()
    mill.close()


def test_a_worker_runs_every_job_to_success_through_a_redis_restart(aof_redis: OwnRedis) -> None:
    # given a worker busy with 60 jobs that take a little while each
    mill = Mill(aof_redis.url)
    done: list[int] = []
    lock = threading.Lock()

    def slow(ctx: Any, n: int) -> int:
        time.sleep(0.02)
        with lock:
            done.append(n)
        return n

    mill.task(name="slow")(slow)
    jobs = mill.enqueue_many([{"task": "slow", "kwargs": {"n": n}} for n in range(60)])
    worker = mill.worker(concurrency=4, lease="2s", poll="100ms")
    worker.start()
    # when Redis is killed while the worker runs, and comes back a second later
    deadline = time.monotonic() + 10
    while len(done) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    aof_redis.kill()
    time.sleep(1.0)
    aof_redis.start()
    # then every job ends succeeded with its result: none lost, none failed
    try:
        for job in jobs:
            job.wait(timeout=30)
            assert (job.state, job.result) == ("succeeded", job.kwargs["n"])
        # and the worker still wakes at once for new work (it subscribed again)
        start = time.monotonic()
        late = mill.enqueue("slow", kwargs={"n": 99})
        late.wait(timeout=10, poll=0.005)
        assert time.monotonic() - start < 1.0
    finally:
        worker.stop(grace=5)
        mill.close()
    assert set(done) >= set(range(60))


@pytest.mark.parametrize(("options", "expected"), [
    (("--appendonly", "yes", "--appendfsync", "always"), None),
    (("--appendonly", "yes", "--appendfsync", "everysec"), None),
    (("--appendonly", "yes", "--appendfsync", "no"), "appendfsync no"),
    (("--appendonly", "no", "--save", "60 1000"), "only takes RDB snapshots"),
    (("--appendonly", "no"), "keeps nothing on disk"),
    (("--appendonly", "yes", "--maxmemory-policy", "allkeys-lru"), "evicts keys"),
])
def test_the_durability_warning_says_what_a_restart_of_that_redis_would_lose(
        tmp_path: Path, options: tuple[str, ...], expected: str | None) -> None:
    need_server()
    # given a Redis started with these persistence settings
    server = OwnRedis(tmp_path, *options)
    server.start()
    try:
        # when the backend is asked what a restart would lose
        warning = RedisBackend(server.url).durability_warning()
    finally:
        server.kill()
    # then it names the setting, or says nothing when the append-only file is synced
    if expected is None:
        assert warning is None
    else:
        assert warning is not None and expected in warning
