"""`taskmill worker` and `taskmill run` as real processes: burst, SIGTERM, the supervisor of
several processes, and the dashboard served next to the worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
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


def test_a_task_past_its_timeout_in_worker_processes_is_killed_and_the_others_go_on(cli: Cli) -> None:
    # Given a supervisor of two worker processes
    supervisor = cli.start("worker", "--processes", "2", "--concurrency", "1")
    # When a task spins past its timeout, deaf to ctx.cancelled
    spun = cli.enqueue("spin")
    job = eventually(lambda: cli.job(spun) if cli.job(spun)["state"] == "failed" else None,
                     timeout=40, what="the spinning job failing")
    # Then it fails with TimeoutError, its process is replaced, and work goes on
    assert job["error"]["type"] == "TimeoutError"
    after = cli.enqueue("whoami")
    eventually(lambda: cli.job(after)["state"] == "succeeded" or None, timeout=40, what="a next job")
    code, err = finish(supervisor)
    assert "ended itself to stop a task past its timeout" in err
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


def test_web_serves_the_dashboard_until_sigterm_and_exits_0(cli: Cli) -> None:
    pytest.importorskip("uvicorn")
    # Given `taskmill web` on a free port
    port = free_port()
    proc = cli.start("web", "--port", str(port))
    try:
        # Then the API answers with the store's jobs
        job_id = cli.enqueue("add", "-k", "a=1")

        def job() -> dict[str, str] | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs/{job_id}", timeout=2) as r:
                    return json.loads(r.read())  # type: ignore[no-any-return]
            except OSError:
                return None

        assert eventually(job, timeout=30, what="the API answering")["state"] == "queued"
    finally:
        code, err = finish(proc)
    assert code == 0, err


def test_logs_follow_prints_lines_as_they_come_until_the_job_ends(cli: Cli) -> None:
    job_id = cli.enqueue("slow", "-k", "seconds=1")
    worker = cli.start("worker")
    try:
        done = cli("logs", job_id, "--follow", timeout=60)
        assert done.returncode == 0, done.stderr
        assert "slept 1.0 seconds" in done.stdout
    finally:
        finish(worker)


def test_cancel_of_a_running_job_asks_it_to_stop_and_it_ends_cancelled(cli: Cli) -> None:
    # Given a long job running
    job_id = cli.enqueue("slow", "-k", "seconds=30")
    worker = cli.start("worker")
    try:
        eventually(lambda: cli.job(job_id)["state"] == "running", what="the job starting")
        # When it is cancelled
        done = cli("cancel", job_id, "--reason", "too slow")
        # Then the command says it asked, and the job ends cancelled with the reason
        assert done.returncode == 0, done.stderr
        assert f"asked running job {job_id} (slow) to stop" in done.stdout
        waited = cli("wait", job_id, "--timeout", "20")
        assert "cancelled: too slow" in waited.stderr and waited.returncode == 1
    finally:
        finish(worker)


def test_stats_watch_refreshes_until_ctrl_c_and_exits_0(cli: Cli) -> None:
    cli.enqueue("add", "-k", "a=1")
    # Given stats --watch piped: a table per refresh
    proc = cli.start("stats", "--watch", "--interval", "0.2")
    assert proc.stdout is not None
    seen = [proc.stdout.readline() for _ in range(3)]
    assert "QUEUE" in seen[0] and any("default" in line for line in seen)
    # When it gets Ctrl-C, then it exits 0
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


def test_the_example_app_runs_its_demo_jobs(cli: Cli) -> None:
    pytest.importorskip("uvicorn")
    # Given the repository's example app on a fresh store
    repo = Path(__file__).resolve().parents[1]
    env = {**cli.env, "TASKMILL_APP": "examples.app:mill"}

    def taskmill(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "taskmill", *args], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=120)

    # When `taskmill run` seeds it and drains what is ready
    done = taskmill("run", "--burst", "--port", str(free_port()))
    assert done.returncode == 0, done.stderr
    # Then the demo jobs ran: an export with its result URL, a cleanup, an import, a migration
    # in iterations, a fetch that failed once then succeeded; one that keeps failing retries
    jobs = {(j["task"], j["title"]): j for j in json.loads(taskmill("ls", "--json").stdout)["items"]}
    export = jobs[("export_report", "Sales report")]
    assert export["state"] == "succeeded" and export["result_url"] == "/jobs/{id}"
    assert export["result"]["rows"] == 500
    assert jobs[("cleanup_tmp_files", None)]["state"] == "succeeded"
    assert jobs[("ImportProducts", None)]["result"] == {"imported": 600, "path": "products.csv"}
    migration = jobs[("migrate_users", None)]
    assert migration["state"] == "succeeded" and migration["iterations"] == 4
    fetch = jobs[("flaky_fetch", None)]
    assert fetch["state"] == "succeeded" and fetch["attempts"] == 2
    assert jobs[("flaky_fetch", "A feed that is down")]["state"] in ("scheduled", "failed")
    assert jobs[("export_report", "Tomorrow's report, in 30s")]["state"] == "scheduled"
    # And seeding again adds no second copy of the job still waiting
    assert taskmill("run", "--burst", "--port", str(free_port())).returncode == 0
    titles = [j["title"] for j in json.loads(taskmill("ls", "--json").stdout)["items"]]
    assert titles.count("Tomorrow's report, in 30s") == 1
