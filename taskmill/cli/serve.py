"""Commands that run things: `worker` (one process, or a supervisor of several), `web`, and `run`
(worker and dashboard in one process)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.logging import RichHandler

from ..errors import ConfigError
from ..job import Job, JobState
from ..mill import Mill
from ..worker.worker import EXIT_TIMEOUT_KILL
from .common import Env, console, uses_mill
from .render import duration

log = logging.getLogger("taskmill.cli")
F = TypeVar("F", bound=Callable[..., Any])
LEVELS = ["debug", "info", "warning", "error"]


def worker_options(fn: F) -> F:
    options = [
        click.option("--parent-pid", type=int, hidden=True),
        click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False), default="info",
                     show_default=True, help="Which log lines to print."),
        click.option("--grace", default="30s", show_default=True, metavar="DURATION",
                     help="On SIGTERM: how long running jobs may take to finish before they are "
                          "handed back."),
        click.option("--burst", is_flag=True, help="Exit once no job is ready (jobs scheduled later "
                                                    "stay scheduled)."),
        click.option("--processes", "-p", type=click.IntRange(1), default=1, show_default=True,
                     help="Worker processes; more than 1 starts a supervisor that restarts any that "
                          "dies."),
        click.option("--concurrency", "-c", type=click.IntRange(1), default=8, show_default=True,
                     help="Jobs run at once per process."),
        click.option("--queues", "-Q", default="*", show_default=True, metavar="a,b|*",
                     help="Queues to serve, comma-separated, or * for all."),
    ]
    for option in options:
        fn = option(fn)
    return fn


def web_options(fn: F) -> F:
    options = [
        click.option("--token", envvar="TASKMILL_TOKEN", metavar="TOKEN",
                     help="Bearer token the dashboard and APIs require [env TASKMILL_TOKEN]; "
                          "without one only loopback clients are served."),
        click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True),
        click.option("--host", default="127.0.0.1", show_default=True),
    ]
    for option in options:
        fn = option(fn)
    return fn


# -- logging and events ------------------------------------------------------------------------


def setup_logging(level: str) -> None:
    """Log lines on stderr: Rich on a terminal, plain timestamped lines for log collectors."""
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = RichHandler(console=console(stderr=True), show_path=False, markup=False,
                              rich_tracebacks=False, log_time_format="%H:%M:%S")
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def log_events(mill: Mill) -> None:
    """One log line per thing a job does in this process."""

    def took(job: Job) -> str:
        if job.started_at is None or job.finished_at is None:
            return ""
        return f" in {duration(round((job.finished_at - job.started_at).total_seconds(), 1))}"

    def listener(event: str, job: Job) -> None:
        name = f"job {job.id} {job.task}"
        # One INFO line per outcome; starts are DEBUG (a line per job costs a busy worker ~10%).
        if event == "started" and job.iterations:
            log.debug("%s iteration %d started", name, job.iterations + 1)
        elif event == "started":
            log.debug("%s started (attempt %d of %d)", name, job.attempts, job.max_attempts)
        elif event == "succeeded":
            log.info("%s succeeded%s", name, took(job))
        elif event == "failed":
            error = f"{job.error.type}: {job.error.message}" if job.error else "no reason recorded"
            log.warning("%s failed%s: %s", name, took(job), error)
        elif event == "cancelled":
            log.info("%s cancelled%s", name, f": {job.cancel_reason}" if job.cancel_reason else "")
        elif event == "requeued":
            if job.state is JobState.SCHEDULED and job.error is not None and job.iterations == 0:
                log.warning("%s attempt %d failed (%s: %s); next try at %s UTC, %d left", name,
                            job.attempts, job.error.type, job.error.message,
                            f"{job.scheduled_at:%H:%M:%S}", job.attempts_left)
            elif job.iterations:
                log.info("%s iteration %d done; it continues", name, job.iterations)
            else:
                log.info("%s handed back (%s)", name, job.state.value)

    mill.on_event(listener)


# -- the worker ----------------------------------------------------------------------------------


def _watch_parent(parent_pid: int) -> None:
    """In a supervised process: stop (as on SIGTERM) if the supervisor dies."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        log.warning("the supervisor (pid %d) is gone: stopping", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="taskmill-parent-watch", daemon=True).start()


def _child_argv(env: Env, queues: str, concurrency: int, grace: str, burst: bool,
                log_level: str) -> list[str]:
    argv = [sys.executable, "-m", "taskmill", "worker", "--queues", queues, "--concurrency",
            str(concurrency), "--grace", grace, "--log-level", log_level, "--processes", "1",
            "--parent-pid", str(os.getpid())]
    if env.app:
        argv += ["--app", env.app]
    if env.url and env.url_given:
        argv += ["--url", env.url]
    if env.debug:
        argv.append("--debug")
    if burst:
        argv.append("--burst")
    return argv


def _prepare(env: Env, command: str, queues: str, concurrency: int, grace: str) -> tuple[Mill, Any]:
    """The app's Mill with its store open, and a worker checked for bad options (not started)."""
    mill = env.require_app(command)
    mill.backend  # noqa: B018 - open the store now, so an unreachable one is one clear error
    worker = mill.worker(queues=queues, concurrency=concurrency, grace=grace)
    return mill, worker


def _banner(mill: Mill, what: str, queues: str, concurrency: int, processes: int) -> None:
    names = ", ".join(sorted(mill.registry)) or "none"
    per = f"concurrency {concurrency}" + (f" in each of {processes} processes" if processes > 1 else "")
    log.info("%s on %s · queues %s · %s · tasks: %s", what, mill.url, queues, per, names)


def _run_one(worker: Any, burst: bool) -> None:
    worker.run(burst=burst)
    counts = worker.counts
    log.info("worker stopped: %s", ", ".join(f"{n} {k}" for k, n in counts.items() if n) or
             "no jobs run")


@click.command("worker", epilog="""\b
Examples:
  taskmill worker --app myapp.tasks:mill
  taskmill worker --app myapp.tasks:mill --queues exports,default --concurrency 4 --processes 2
  taskmill worker --app myapp.tasks:mill --burst     # drain what is ready, then exit
SIGTERM or Ctrl-C stops claiming and lets running jobs finish within --grace;
a second one exits at once (their leases bring the jobs back).
""")
@worker_options
@uses_mill
def worker(env: Env, queues: str, concurrency: int, processes: int, burst: bool, grace: str,
           log_level: str, parent_pid: int | None) -> None:
    """Run jobs from the queues until stopped.

    With --processes N above 1, a supervisor starts N worker processes (fresh interpreters),
    passes SIGTERM/SIGINT on to them and restarts one that dies."""
    setup_logging(log_level)
    mill, one = _prepare(env, "worker", queues, concurrency, grace)
    if processes > 1:
        _banner(mill, "supervisor", queues, concurrency, processes)
        mill.close()
        code = Supervisor(_child_argv(env, queues, concurrency, grace, burst, log_level),
                          processes, burst).run()
        if code:
            raise click.exceptions.Exit(code)
        return
    if parent_pid is not None:
        _watch_parent(parent_pid)
        one.kill_on_timeout = True
    log_events(mill)
    _banner(mill, f"worker {one.id}", queues, concurrency, 1)
    one.exit_when_stuck = True  # this process is the worker's own: it may exit with stuck jobs
    _run_one(one, burst)


# -- the supervisor ------------------------------------------------------------------------------


@dataclass
class Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0
    done: bool = False
    code: int = 0


class Supervisor:
    """Runs N worker processes (fresh interpreters, never forks), forwards SIGTERM/SIGINT to them,
    and restarts one that dies while not stopping (with a growing pause if it dies at once)."""

    QUICK = 5.0

    def __init__(self, argv: list[str], processes: int, burst: bool) -> None:
        self.argv = argv
        self.slots = [Slot(i) for i in range(processes)]
        self.burst = burst
        self.stopping = False

    def _spawn(self, slot: Slot) -> None:
        # Its own process group: a Ctrl-C in the terminal reaches the supervisor only, which
        # forwards it once (a second signal would make the worker exit at once).
        slot.proc = subprocess.Popen(self.argv, process_group=0)
        slot.started = time.monotonic()
        log.info("worker process %d started (pid %d)", slot.index + 1, slot.proc.pid)

    def _forward(self, signum: int, frame: Any) -> None:
        if not self.stopping:
            log.info("stopping: passing %s on to the worker processes",
                     signal.Signals(signum).name)
        self.stopping = True
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(signum)

    def run(self) -> int:
        on_main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, self._forward) for s in (signal.SIGTERM, signal.SIGINT)} \
            if on_main else {}
        try:
            for slot in self.slots:
                self._spawn(slot)
            while not all(slot.done for slot in self.slots):
                for slot in self.slots:
                    self._check(slot)
                time.sleep(0.1)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        failed = [s for s in self.slots if s.code != 0]
        for slot in failed:
            log.error("worker process %d ended with exit code %d", slot.index + 1, slot.code)
        return 1 if failed else 0

    def _check(self, slot: Slot) -> None:
        if slot.done:
            return
        if slot.proc is None:
            if self.stopping:
                slot.done = True
            elif time.monotonic() >= slot.restart_at:
                self._spawn(slot)
            return
        code = slot.proc.poll()
        if code is None:
            return
        if code == EXIT_TIMEOUT_KILL and not self.stopping:
            log.warning("worker process %d (pid %d) ended itself to stop a task past its timeout; "
                        "starting a fresh one", slot.index + 1, slot.proc.pid)
            slot.proc, slot.restart_at = None, time.monotonic()
            return
        if self.stopping or self.burst:
            slot.done, slot.code, slot.proc = True, code, None
            return
        quick = time.monotonic() - slot.started < self.QUICK
        slot.quick_deaths = slot.quick_deaths + 1 if quick else 0
        pause = min(2.0 ** slot.quick_deaths, 30.0) if quick else 0.5
        log.warning("worker process %d (pid %d) died unexpectedly (exit code %d); restarting it in "
                    "%s", slot.index + 1, slot.proc.pid, code, duration(pause))
        slot.proc, slot.restart_at = None, time.monotonic() + pause


# -- the web -------------------------------------------------------------------------------------


def _asgi(mill: Mill, token: str | None, host: str) -> Any:
    """The dashboard/API app, or ConfigError saying why there is none."""
    if token:
        os.environ["TASKMILL_TOKEN"] = token
    elif host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("no token set (--token or TASKMILL_TOKEN): only clients on this machine are "
                    "served, even though it listens on %s", host)
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError("the web interface needs `pip install taskmill[web]`") from None
    return mill.asgi()


def _server(app: Any, host: str, port: int, log_level: str) -> Any:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=None,
                            access_log=log_level == "debug", lifespan="auto")
    return uvicorn.Server(config)


class _Absorb:
    """Signal handlers that only record the signal: uvicorn re-raises what it caught after its
    shutdown, and then the command should end with 0 instead of dying of the signal."""

    def __enter__(self) -> _Absorb:
        self.previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


@click.command("web", epilog="""\b
Examples:
  taskmill web --app myapp.tasks:mill
  TASKMILL_TOKEN=s3cret taskmill web --app myapp.tasks:mill --host 0.0.0.0 --port 8080
""")
@web_options
@click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False), default="info",
              show_default=True)
@uses_mill
def web(env: Env, host: str, port: int, token: str | None, log_level: str) -> None:
    """Serve the dashboard, HTTP API and GraphQL."""
    setup_logging(log_level)
    mill = env.mill
    mill.backend  # noqa: B018 - an unreachable store is one clear error, before serving
    server = _server(_asgi(mill, token, host), host, port, log_level)
    log.info("dashboard and API for %s at http://%s:%d", mill.url, host, port)
    with _Absorb():
        try:
            server.run()
        except SystemExit:
            raise ConfigError(f"could not serve on {host}:{port} (see the line above)") from None


@click.command("run", epilog="""\b
Examples:
  taskmill run --app examples.app:mill          # the README's first command
  taskmill run --app myapp:mill --port 8080 --concurrency 16 --no-seed
Runs the app's on_start(mill) or seed(mill) first, if it defines one.
""")
@worker_options
@web_options
@click.option("--seed/--no-seed", default=True, show_default=True,
              help="Call the app module's on_start(mill) or seed(mill) before starting.")
@uses_mill
def run(env: Env, queues: str, concurrency: int, processes: int, burst: bool, grace: str,
        log_level: str, parent_pid: int | None, host: str, port: int, token: str | None,
        seed: bool) -> None:
    """Run a worker and the dashboard in one process.

    The one-command start: worker options as for `taskmill worker`, web options as for
    `taskmill web`."""
    setup_logging(log_level)
    mill, one = _prepare(env, "run", queues, concurrency, grace)
    try:
        app = _asgi(mill, token, host)
    except Exception as exc:
        app = None
        log.warning("the dashboard is not available (%s); running the worker alone", exc)
    hook = env.hook("on_start", "seed") if seed else None
    if hook is not None:
        hook(mill)
        log.info("ran %s.%s(mill)", env.module.__name__ if env.module else "app", hook.__name__)
    server = thread = None
    if app is not None:
        server = _server(app, host, port, "warning" if log_level == "info" else log_level)
        thread = threading.Thread(target=server.run, name="taskmill-web", daemon=True)
        thread.start()
        while not server.started and thread.is_alive():
            time.sleep(0.05)
        if not server.started:
            raise ConfigError(f"could not serve the dashboard on {host}:{port} (see the line above)")
        log.info("dashboard: http://%s:%d", host, port)
    try:
        if processes > 1:
            _banner(mill, "supervisor", queues, concurrency, processes)
            code = Supervisor(_child_argv(env, queues, concurrency, grace, burst, log_level),
                              processes, burst).run()
            if code:
                raise click.exceptions.Exit(code)
        else:
            log_events(mill)
            _banner(mill, f"worker {one.id}", queues, concurrency, 1)
            _run_one(one, burst)
    finally:
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(10)
