"""What every adapter shares: the run's settings (from the environment), the job bodies and the
record each run of a job leaves.

Each run of a job appends one fixed-width line to a file of its own process in the run's record
folder (`BENCH_PEERS_REC`): `index pid t_start t_end`. One `os.write` on an `O_APPEND` file: a
few microseconds, the same for every library, kept even if the worker is killed. The orchestrator
counts lines by file size and, at the end, reads them to check that each job ran exactly once.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

LINE = "{index:09d} {pid:07d} {t0:17.6f} {t1:17.6f}\n"
LINE_SIZE = len(LINE.format(index=0, pid=0, t0=time.time(), t1=time.time()))
KINDS = ("noop", "sleep", "cpu")
SLEEP = 0.010  # the I/O-bound job: 10 ms of waiting

REDIS_URL = os.environ.get("TASKMILL_BENCH_REDIS_PEERS", "redis://127.0.0.1:6379/15")
PG_DSN = os.environ.get("TASKMILL_BENCH_PG_PEERS", "postgresql://postgres@127.0.0.1:5432/bench_peers")


@dataclass(frozen=True)
class Config:
    """One measurement's settings, passed to the driver and the worker through the environment."""

    namespace: str  # queue name / key prefix / schema: unique per measurement
    records: str  # the record folder
    url: str  # the store: a redis://, postgresql:// or sqlite:/// URL, or a file path
    slots: int  # the worker's concurrency, for libraries that read it from the app module
    loops: int  # iterations of the CPU-bound job's loop (calibrated to ~20 ms)

    def env(self) -> dict[str, str]:
        return {"BENCH_PEERS_NS": self.namespace, "BENCH_PEERS_REC": self.records,
                "BENCH_PEERS_URL": self.url, "BENCH_PEERS_SLOTS": str(self.slots),
                "BENCH_PEERS_LOOPS": str(self.loops)}

    @classmethod
    def from_env(cls) -> Config:
        return cls(namespace=os.environ.get("BENCH_PEERS_NS", "bpeersunset"),
                   records=os.environ.get("BENCH_PEERS_REC", ""),
                   url=os.environ.get("BENCH_PEERS_URL", ""),
                   slots=int(os.environ.get("BENCH_PEERS_SLOTS", "8")),
                   loops=int(os.environ.get("BENCH_PEERS_LOOPS", "100000")))


CONFIG = Config.from_env()
_fd: tuple[int, int] | None = None  # (pid, fd): a forked child opens its own file


def _record_fd() -> int:
    global _fd
    pid = os.getpid()
    if _fd is None or _fd[0] != pid:
        path = os.path.join(CONFIG.records, f"rec-{pid}.log")
        _fd = (pid, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
    return _fd[1]


def record(index: int, t0: float) -> None:
    line = LINE.format(index=index, pid=os.getpid(), t0=t0, t1=time.time())
    os.write(_record_fd(), line.encode())


def burn(loops: int) -> int:
    """CPU-bound work: the same pure-Python loop for every library."""
    total = 0
    for j in range(loops):
        total += j * j
    return total


def run_job(index: int, kind: str) -> None:
    """The body of every library's job (threads and processes)."""
    t0 = time.time()
    if kind == "sleep":
        time.sleep(SLEEP)
    elif kind == "cpu":
        burn(CONFIG.loops)
    record(index, t0)


async def run_job_async(index: int, kind: str) -> None:
    """The body of every library's job (event loops): the I/O wait is an `asyncio.sleep`."""
    t0 = time.time()
    if kind == "sleep":
        await asyncio.sleep(SLEEP)
    elif kind == "cpu":
        burn(CONFIG.loops)
    record(index, t0)


def calibrate(target: float = 0.020) -> int:
    """Loops of `burn` that take about `target` seconds of CPU here, now."""
    loops = 10_000
    while True:
        t0 = time.thread_time()
        burn(loops)
        took = time.thread_time() - t0
        if took >= 0.005:
            break
        loops *= 4
    best = took
    for _ in range(4):
        t0 = time.thread_time()
        burn(loops)
        best = min(best, time.thread_time() - t0)
    return max(1, round(loops * target / best))


# -- reading the records ---------------------------------------------------------------------------


def count(folder: str | Path) -> int:
    """How many job runs the folder holds (complete lines only)."""
    total = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("rec-"):
                    total += entry.stat().st_size // LINE_SIZE
    except FileNotFoundError:
        return 0
    return total


@dataclass(frozen=True)
class Run:
    index: int
    pid: int
    t0: float
    t1: float


def read(folder: str | Path) -> list[Run]:
    runs = []
    for path in sorted(Path(folder).glob("rec-*.log")):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4:
                runs.append(Run(int(parts[0]), int(parts[1]), float(parts[2]), float(parts[3])))
    return runs


def wait_count(folder: str | Path, target: int, timeout: float, poll: float = 0.002) -> bool:
    """Wait until the folder holds `target` runs; False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while count(folder) < target:
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True
