"""Running the `taskmill` command as a subprocess against a temp SQLite file and a small app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

APP = textwrap.dedent('''
    import os
    import time

    from pydantic import BaseModel, Field

    from taskmill import Cancelled, Continue, Mill, Task

    mill = Mill()


    @mill.task(retry=0)
    def add(ctx, a: int, b: int = 0):
        """Add two numbers."""
        ctx.log.info("adding %d and %d", a, b)
        ctx.progress(50, "half way")
        return a + b


    @mill.task(retry=0)
    def boom(ctx, message: str = "boom"):
        ctx.log.warning("about to fail")
        raise ValueError(message)


    @mill.task(retry=0, queue="slow")
    def slow(ctx, seconds: float = 2.0, marker: str = ""):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if ctx.cancelled:
                raise Cancelled()
            ctx.progress(100 * (1 - (end - time.monotonic()) / seconds), "sleeping")
            time.sleep(0.05)
        if marker:
            open(marker, "w").close()
        ctx.log.info("slept %s seconds", seconds)
        return {"slept": seconds}


    @mill.task(retry=0, timeout="500ms")
    def spin(ctx):
        while True:  # CPU-bound and deaf to ctx.cancelled: only ending its process stops it
            pass


    @mill.task(retry=0)
    def whoami(ctx, pause: float = 0.0):
        time.sleep(pause)
        return os.getpid()


    @mill.task(every="1h", retry=0)
    def hourly(ctx):
        return "tick"


    @mill.task(retry=0)
    def batches(ctx, total: int = 3):
        done = (ctx.state or 0) + 1
        ctx.progress(100 * done / total)
        return Continue(state=done) if done < total else {"batches": done}


    class Greeting(BaseModel):
        name: str = Field(min_length=1)
        times: int = Field(1, ge=1)


    @mill.task(retry=0, queue="greetings")
    class Greet(Task):
        def run(self, ctx, input: Greeting):
            return ", ".join([f"hello {input.name}"] * input.times)


    def seed(mill):
        add.with_options(unique=True, title="seeded").enqueue(1, b=2)
''')


@dataclass
class Cli:
    """`taskmill` run in `cwd` (where the app module `testapp.py` is) on the store `url`."""

    cwd: Path
    url: str
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 60, input: str | None = None,
                 app: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if not app:
            env.pop("TASKMILL_APP", None)
        return subprocess.run([sys.executable, "-m", "taskmill", *args], cwd=self.cwd, env=env,
                              capture_output=True, text=True, timeout=timeout, input=input)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "taskmill", *args], cwd=self.cwd, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def enqueue(self, task: str, *args: str) -> str:
        """Enqueue through the command and return the new job's id."""
        done = self("enqueue", task, "-q", *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def job(self, job_id: str) -> dict[str, Any]:
        done = self("show", job_id, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def burst(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self("worker", "--burst", *args)
        assert done.returncode == 0, done.stderr
        return done


def make_cli(tmp_path: Path, url: str) -> Cli:
    (tmp_path / "testapp.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKMILL_") and k != "COLUMNS"}
    env.update(TASKMILL_URL=url, TASKMILL_APP="testapp:mill", PYTHONUNBUFFERED="1")
    return Cli(tmp_path, url, env)


def eventually(check: Callable[[], Any], timeout: float = 40.0, what: str = "the condition") -> Any:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.1)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: exit code 1, exactly one line on stderr, no traceback."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]
