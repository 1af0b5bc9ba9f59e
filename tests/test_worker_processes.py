"""Workers as real processes: killed mid-job, stopped by SIGTERM, and racing a stale lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskmill import JobState, Mill
from taskmill.maintenance import Maintenance

APP = '''
import os, signal, sys, time
from pathlib import Path
from taskmill import Mill

mill = Mill(os.environ["TASKMILL_URL"])
MARK = Path(os.environ["MARK_DIR"])

@mill.task(retry=[(1, "100ms")])
def sleepy(ctx):
    (MARK / f"started-{ctx.job_id}-{ctx.attempt}").touch()
    if ctx.attempt == 1:
        time.sleep(60)
    return {"attempt": ctx.attempt}

@mill.task(retry=[(1, "100ms")])
def suicidal(ctx):
    os.kill(os.getpid(), signal.SIGKILL)

@mill.task
def steady(ctx, seconds: float):
    (MARK / f"started-{ctx.job_id}-{ctx.attempt}").touch()
    time.sleep(seconds)
    return "finished"

if __name__ == "__main__":
    burst = sys.argv[1] == "burst"
    mill.worker(lease="1s", grace="10s").run(burst=burst)
'''


@pytest.fixture
def app(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    return {**os.environ, "TASKMILL_URL": sqlite_url, "MARK_DIR": str(tmp_path),
            "PYTHONPATH": str(tmp_path)}


def start_worker(env: dict[str, str], mode: str = "loop") -> subprocess.Popen[bytes]:
    script = Path(env["MARK_DIR"]) / "app.py"
    return subprocess.Popen([sys.executable, str(script), mode], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def test_a_job_whose_worker_is_killed_mid_run_is_rescued_after_its_lease_and_completes(
        app: dict[str, str], tmp_path: Path) -> None:
    # Given a job enqueued (the test registers a stand-in of the same name to enqueue it)
    mill = Mill(app["TASKMILL_URL"])
    mill.task(retry=[(1, "100ms")], name="sleepy")(lambda ctx: None)
    job = mill.enqueue("sleepy")
    worker = start_worker(app)
    try:
        wait_for(tmp_path / f"started-{job.id}-1")
        # When its worker dies without a word
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert job.refresh().state is JobState.RUNNING
    # Then another worker rescues it once the lease runs out and it runs again
    second = start_worker(app)
    try:
        job.wait(timeout=30)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    assert (job.state, job.attempts, job.result) == (JobState.SUCCEEDED, 2, {"attempt": 2})


def test_a_job_that_kills_its_worker_every_time_ends_failed(app: dict[str, str]) -> None:
    mill = Mill(app["TASKMILL_URL"])
    mill.task(retry=[(1, "100ms")], name="suicidal")(lambda ctx: None)
    job = mill.enqueue("suicidal")
    deadline = time.monotonic() + 60
    while not job.refresh().finished:
        assert time.monotonic() < deadline, f"job still {job.state}"
        start_worker(app, "burst").wait(30)
        time.sleep(0.3)
    assert job.state is JobState.FAILED and job.attempts == 2
    assert job.error is not None and job.error.type == "LeaseExpired"


def test_sigterm_lets_the_running_job_finish_and_the_worker_exits_zero(
        app: dict[str, str], tmp_path: Path) -> None:
    mill = Mill(app["TASKMILL_URL"])
    mill.task(name="steady")(lambda ctx, seconds: None)
    job = mill.enqueue("steady", kwargs={"seconds": 1.0})
    worker = start_worker(app)
    wait_for(tmp_path / f"started-{job.id}-1")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert (job.refresh().state, job.result) == (JobState.SUCCEEDED, "finished")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_worker_that_lost_its_lease_cannot_overwrite_the_result_of_the_one_that_took_over(
        sqlite_url: str) -> None:
    release = threading.Event()
    frozen = Clock(datetime.now(UTC) - timedelta(minutes=10))
    stale_mill = Mill(sqlite_url, clock=frozen)   # its leases are dated ten minutes ago
    live_mill = Mill(sqlite_url)

    @stale_mill.task(retry=[(1, "1ms")])
    def report(ctx: object) -> str:
        release.wait(30)
        return "stale"

    @live_mill.task(name="report", retry=[(1, "1ms")])
    def report_live(ctx: object) -> str:
        return "fresh"

    # Given a job claimed by a worker whose lease has run out while the job still runs
    job = live_mill.enqueue("report")
    stale = stale_mill.worker(lease="1s", concurrency=1)  # its one slot stays busy
    stale.start()
    try:
        deadline = time.monotonic() + 10
        while job.refresh().state is not JobState.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # When it is rescued and another worker completes it
        Maintenance(live_mill).rescue(datetime.now(UTC))
        time.sleep(0.01)
        live_mill.worker().run(burst=True)
        assert (job.refresh().state, job.result) == (JobState.SUCCEEDED, "fresh")
        # and the stale worker then finishes too
        release.set()
        time.sleep(0.3)
    finally:
        release.set()
        stale.stop(grace=5)
    # Then the first completion stands
    assert (job.refresh().state, job.result, job.attempts) == (JobState.SUCCEEDED, "fresh", 2)
    assert stale.counts["lost"] == 1
