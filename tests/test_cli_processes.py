"""`taskmill worker` and `taskmill run` as real processes: burst, SIGTERM, the supervisor of
several processes, and the dashboard served next to the worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from cli_helpers import Cli, eventually, make_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def cli(tmp_path: Path, sqlite_url: str) -> Cli:
    return make_cli(tmp_path, sqlite_url)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def finish(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
    """Send `sig`, wait for the exit; the exit code and what it printed on stderr."""
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"did not stop within {timeout}s:\n{err}") from None
    return proc.returncode, err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_worker_burst_runs_every_ready_job_then_exits_0(cli: Cli) -> None:
    # Given three ready jobs, one of them resumable over three iterations, and one for later
    ids = [cli.enqueue("add", "-k", "a=1"), cli.enqueue("Greet", "-k", "name=Al"),
           cli.enqueue("batches", "-k", "total=3")]
    later = cli.enqueue("add", "-k", "a=2", "--delay", "1h")
    # When a burst worker runs
    done = cli("worker", "--burst", "--concurrency", "2")
    # Then it exits 0 once all ready jobs are done, and says so
    assert done.returncode == 0, done.stderr
    assert "worker stopped: 3 succeeded" in done.stderr
    assert "job 3 batches iteration 2 done; it continues" in done.stderr
    assert [cli.job(i)["state"] for i in ids] == ["succeeded"] * 3
    assert cli.job(ids[2])["result"] == {"batches": 3}
    assert cli.job(later)["state"] == "scheduled"


def test_worker_rejects_bad_options_with_one_line(cli: Cli) -> None:
    done = cli("worker", "--queues", "a,,b")
    assert done.returncode == 1 and "queues must be" in done.stderr and "Traceback" not in done.stderr
    assert cli("worker", "--concurrency", "0").returncode == 2
    assert "grace" in cli("worker", "--grace", "soon").stderr


def test_worker_stops_on_sigterm_with_exit_0_after_the_running_job_finishes(cli: Cli) -> None:
    # Given a worker running a two-second job
    marker = cli.cwd / "finished"
    job_id = cli.enqueue("slow", "-k", "seconds=2", "-k", f"marker={marker}")
    worker = cli.start("worker")
    eventually(lambda: cli.job(job_id)["state"] == "running", what="the job starting")
    # When the worker is sent SIGTERM
    code, err = finish(worker)
    # Then it let the job finish and exited 0
    assert code == 0, err
    assert "stopping: finishing running jobs" in err
    assert marker.exists()
    assert cli.job(job_id)["state"] == "succeeded"


def test_two_processes_share_the_jobs_and_stop_together_on_sigterm(cli: Cli) -> None:
    # Given a supervisor of two worker processes, one job at a time each
    supervisor = cli.start("worker", "--processes", "2", "--concurrency", "1")
    # When six half-second jobs are enqueued
    ids = [cli.enqueue("whoami", "-k", "pause=0.5") for _ in range(6)]

    def results() -> list[int] | None:
        jobs = [cli.job(i) for i in ids]
        return [j["result"] for j in jobs] if all(j["state"] == "succeeded" for j in jobs) else None

    pids = eventually(results, timeout=40, what="all jobs succeeding")
    # Then both processes ran some, none of them the supervisor
    assert len(set(pids)) == 2
    assert supervisor.pid not in pids
    # And SIGTERM stops the supervisor and both processes with exit code 0
    code, err = finish(supervisor)
    assert code == 0, err
    assert err.count("worker stopped") == 2
    assert not any(alive(pid) for pid in set(pids))


def test_the_supervisor_restarts_a_worker_process_that_dies(cli: Cli) -> None:
    # Given a supervisor of two processes, and the pid of one of them
    supervisor = cli.start("worker", "--processes", "2", "--concurrency", "1")
    first = cli.enqueue("whoami")
    victim = eventually(lambda: cli.job(first)["result"], what="the first job running")
    # When that process is killed
    os.kill(victim, signal.SIGKILL)
    # Then a new process takes its place and runs jobs
    eventually(lambda: not alive(victim) or None, what="the process dying")

    def new_pid() -> int | None:
        job_id = cli.enqueue("whoami", "-k", "pause=0.3")
        pid = eventually(lambda: cli.job(job_id)["result"], what="a job running")
        return pid if pid != victim else None

    seen = {new_pid() for _ in range(4)}
    assert victim not in seen
    code, err = finish(supervisor)
    assert "died unexpectedly (exit code -9); restarting it" in err
    assert code == 0, err


def test_worker_processes_stop_when_their_supervisor_is_killed(cli: Cli) -> None:
    # Given a supervisor and the pids of its workers
    supervisor = cli.start("worker", "--processes", "2", "--concurrency", "1")
    ids = [cli.enqueue("whoami", "-k", "pause=0.5") for _ in range(4)]
    pids = {eventually(lambda i=i: cli.job(i)["result"], timeout=30) for i in ids}
    # When the supervisor is killed outright
    supervisor.kill()
    supervisor.communicate()
    # Then its worker processes notice and stop
    eventually(lambda: not any(alive(pid) for pid in pids), timeout=15, what="the workers stopping")


def test_worker_burst_with_two_processes_exits_0_when_the_jobs_are_done(cli: Cli) -> None:
    ids = [cli.enqueue("whoami", "-k", "pause=0.2") for _ in range(4)]
    done = cli("worker", "--processes", "2", "--burst", timeout=60)
    assert done.returncode == 0, done.stderr
    assert all(cli.job(i)["state"] == "succeeded" for i in ids)


def test_run_seeds_the_app_serves_the_dashboard_and_runs_the_worker(cli: Cli) -> None:
    pytest.importorskip("uvicorn")
    # Given `taskmill run` on a free port
    port = free_port()
    proc = cli.start("run", "--port", str(port))
    try:
        # Then the dashboard answers, and the job seed(mill) enqueued runs
        def health() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
                    return bool(reply.status == 200)
            except OSError:
                return False

        eventually(health, timeout=30, what="the dashboard answering")
        job = eventually(lambda: json.loads(cli("ls", "--json").stdout)["items"], what="the seed job")[0]
        assert job["title"] == "seeded"
        eventually(lambda: cli.job(job["id"])["state"] == "succeeded", what="the seed job running")
    finally:
        code, err = finish(proc)
    # And SIGTERM stops it all with exit code 0
    assert code == 0, err
    assert f"dashboard: http://127.0.0.1:{port}" in err
    assert "ran testapp.seed(mill)" in err


def test_run_without_the_dashboard_runs_the_worker_alone_and_says_so(cli: Cli) -> None:
    # Given an app whose Mill cannot build the web app
    (cli.cwd / "noweb.py").write_text(
        "from taskmill import ConfigError\n"
        "from testapp import mill\n"
        "def no_web(*args, **kwargs):\n"
        "    raise ConfigError('the web interface needs `pip install taskmill[web]`')\n"
        "mill.asgi = no_web\n")
    job_id = cli.enqueue("add", "-k", "a=1")
    # When it is run in burst mode
    done = cli("run", "--app", "noweb:mill", "--burst", "--no-seed")
    # Then the worker ran the job and the output says the dashboard is missing
    assert done.returncode == 0, done.stderr
    assert "the dashboard is not available" in done.stderr
    assert "running the worker alone" in done.stderr
    assert cli.job(job_id)["state"] == "succeeded"


def test_run_on_a_port_in_use_fails_with_one_line(cli: Cli) -> None:
    pytest.importorskip("uvicorn")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("run", "--port", str(port), "--burst", "--no-seed", timeout=60)
    assert done.returncode == 1
    assert f"Error: could not serve the dashboard on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
