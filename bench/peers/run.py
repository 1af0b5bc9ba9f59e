#!/usr/bin/env python3
"""taskmill beside its peers, on the same machine in the same run:
`bench/peers.sh [--quick] [--repeats N] [--systems a,b]` (or this file in any venv).

For taskmill on each store it has and for each peer (Celery, RQ, Dramatiq, Huey on Redis and
SQLite, arq, SAQ, Procrastinate), with a no-op job:
- enqueue one at a time (jobs/s), then bulk enqueue where the library has a bulk call;
- drain of those jobs (one-at-a-time ones plus bulk ones) by ONE worker process, the library's own
  worker command started as a subprocess at ~8 slots, timed from the launch of the command to the
  end of the last job (the column "start" is the launch to the first job's start);
- enqueue-to-start latency p50/p99 with an idle worker (each sample is sent once the previous one
  has run, 10-30 ms later);
- a second scenario: jobs that sleep 10 ms (I/O-bound) and jobs that burn ~20 ms of CPU, each
  drained by one worker at the library's best setting for that kind of work;
- the raw driver's limit for each store (redis-py, psycopg, sqlite3), measured in the same run;
- medians of the repeats, and a check on every measurement that each job ran exactly once.
Every job leaves a line in a per-process record file (common.py); a worker that stops making
progress is killed and its figure reported as "timeout".

Isolation: Redis db 15 only, each measurement under a key prefix / queue name of its own and its
keys deleted afterwards (RQ and arq, whose keys have a fixed prefix, hold a lock on db 15 and have
their `rq:*` / `arq:*` keys deleted); PostgreSQL database `bench_peers` (created if missing), a
fresh schema per measurement, dropped afterwards; SQLite files in a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.peers import common  # noqa: E402
from bench.peers.common import PG_DSN, REDIS_URL, Config  # noqa: E402

PG_ADMIN_DSN = os.environ.get("TASKMILL_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
ADAPTERS = "bench.peers.adapters"
LOCK_KEY = "bpeers:db15:lock"
SETTLE = 0.5  # seconds to wait after the last expected run, to see a late duplicate
FIRST_JOB_TIMEOUT = 90.0  # a worker's start-up, under load
STALL_TIMEOUT = 30.0  # no new run for this long: the worker is stuck
STOP_TIMEOUT = 20.0  # SIGTERM, then SIGKILL
PER_JOB = {"noop": 0.05, "sleep": 0.05, "cpu": 0.25}  # hard cap on a drain: start-up + n x this
PY = sys.executable


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the systems ----------------------------------------------------------------------------------


@dataclass
class Slot:
    """One measurement's worker setting."""

    kind: str
    cfg: Config


@dataclass
class System:
    key: str
    name: str
    store: str  # "redis", "postgres", "sqlite"
    module: str
    dist: str
    imports: tuple[str, ...]
    slots: dict[str, int]  # per kind: the slots (threads, tasks, processes) the worker is given
    worker: Callable[[Slot], list[str]]
    setting: Callable[[str, int], str]
    shared_keys: tuple[str, ...] = ()  # key patterns in db 15 that cannot take a prefix
    prepare: bool = False
    bulk_name: str = "—"

    @property
    def is_taskmill(self) -> bool:
        return self.name == "taskmill"

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    def missing(self) -> str | None:
        for name in self.imports:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return f"{name} is not importable in this venv ({PY})"
        return None


def _py(module: str, *args: str) -> list[str]:
    return [PY, "-m", module, *args]


def taskmill_cli_available() -> bool:
    try:
        return importlib.util.find_spec("taskmill.cli") is not None
    except ImportError:
        return False


def taskmill_worker(use_cli: bool) -> Callable[[Slot], list[str]]:
    """`taskmill worker --app ...` (the CLI: `--processes 2 --concurrency 1` for CPU-bound work), or
    `mill.worker(concurrency=N).run()` in a small script where the CLI is not there."""
    def worker(s: Slot) -> list[str]:
        if not use_cli:
            return _py(f"{ADAPTERS}.taskmill_peer", "--concurrency", str(s.cfg.slots))
        processes, concurrency = (s.cfg.slots, 1) if s.kind == "cpu" else (1, s.cfg.slots)
        return _py("taskmill", "worker", "--app", f"{ADAPTERS}.taskmill_peer:mill", "--url", s.cfg.url,
                   "--concurrency", str(concurrency), "--processes", str(processes),
                   "--log-level", "warning")
    return worker


def taskmill_setting(use_cli: bool) -> Callable[[str, int], str]:
    def setting(kind: str, n: int) -> str:
        if use_cli:
            return {"noop": f"`taskmill worker --concurrency {n}` (thread pool)",
                    "sleep": f"`async def` job, `--concurrency {n}` (event loop)",
                    "cpu": f"`--processes {n} --concurrency 1`"}[kind]
        return {"noop": f"`mill.worker(concurrency={n}).run()` (thread pool)",
                "sleep": f"`async def` job, concurrency {n} (event loop)",
                "cpu": f"concurrency {n} (threads: no CLI with --processes here)"}[kind]
    return setting


def celery_worker(s: Slot) -> list[str]:
    pool = "prefork" if s.kind == "cpu" else "threads"
    return _py("celery", "-A", f"{ADAPTERS}.celery_peer", "worker", "-P", pool, "-c", str(s.cfg.slots),
               "-Q", s.cfg.namespace, "--without-gossip", "--without-mingle", "--without-heartbeat",
               "-l", "WARNING")


def rq_worker(s: Slot) -> list[str]:
    common_args = ["-u", s.cfg.url, "-w", "rq.worker.SimpleWorker", "-q", s.cfg.namespace]
    if s.kind == "noop":
        return _py("rq.cli", "worker", *common_args)
    return _py("rq.cli", "worker-pool", "-n", str(s.cfg.slots), *common_args)


def dramatiq_worker(s: Slot) -> list[str]:
    processes, threads = (s.cfg.slots, 1) if s.kind == "cpu" else (1, s.cfg.slots)
    return _py("dramatiq", f"{ADAPTERS}.dramatiq_peer", "--processes", str(processes), "--threads",
               str(threads), "--queues", s.cfg.namespace)


def huey_worker(s: Slot) -> list[str]:
    return _py("huey.bin.huey_consumer", f"{ADAPTERS}.huey_peer.huey", "-w", str(s.cfg.slots), "-k",
               "process" if s.kind == "cpu" else "thread", "-q")


def arq_worker(s: Slot) -> list[str]:
    return _py("arq", f"{ADAPTERS}.arq_peer.WorkerSettings")


def saq_worker(s: Slot) -> list[str]:
    return _py("saq", f"{ADAPTERS}.saq_peer.settings", "--workers",
               str(s.cfg.slots if s.kind == "cpu" else 1))


def procrastinate_worker(s: Slot) -> list[str]:
    return _py("procrastinate", "--app", f"{ADAPTERS}.procrastinate_peer.app", "worker",
               "--concurrency", str(s.cfg.slots), "--queues", s.cfg.namespace)


def systems(use_cli: bool) -> list[System]:
    slots = {"noop": 8, "sleep": 32, "cpu": 2}
    tm, tm_setting = taskmill_worker(use_cli), taskmill_setting(use_cli)
    return [
        System("taskmill-redis", "taskmill", "redis", "taskmill_peer", "taskmill",
               ("taskmill.backends.redis", "redis"), slots, tm, tm_setting, prepare=True,
               bulk_name="enqueue_many"),
        System("celery", "Celery", "redis", "celery_peer", "celery", ("celery", "redis"), slots,
               celery_worker, lambda k, n: f"`-P {'prefork' if k == 'cpu' else 'threads'} -c {n}`"),
        System("rq", "RQ", "redis", "rq_peer", "rq", ("rq", "redis"), {**slots, "noop": 1, "sleep": 8},
               rq_worker, lambda k, n: ("`rq worker -w SimpleWorker` (1 job at a time)" if k == "noop"
                                        else f"`rq worker-pool -n {n}` ({n} processes)"),
               shared_keys=("rq:*",), bulk_name="enqueue_many"),
        System("dramatiq", "Dramatiq", "redis", "dramatiq_peer", "dramatiq", ("dramatiq", "redis"), slots,
               dramatiq_worker, lambda k, n: (f"`--processes {n} --threads 1`" if k == "cpu"
                                              else f"`--processes 1 --threads {n}`")),
        System("huey-redis", "Huey", "redis", "huey_peer", "huey", ("huey", "redis"), slots, huey_worker,
               lambda k, n: f"`-w {n} -k {'process' if k == 'cpu' else 'thread'}`"),
        System("arq", "arq", "redis", "arq_peer", "arq", ("arq", "redis"), slots, arq_worker,
               lambda k, n: f"`max_jobs={n}` (event loop)", shared_keys=("arq:*",)),
        System("saq", "SAQ", "redis", "saq_peer", "saq", ("saq", "redis"), slots, saq_worker,
               lambda k, n: (f"`--workers {n}`, concurrency 1" if k == "cpu"
                             else f"concurrency {n} (event loop)")),
        System("taskmill-postgres", "taskmill", "postgres", "taskmill_peer", "taskmill",
               ("taskmill.backends.postgres", "psycopg"), slots, tm, tm_setting, prepare=True,
               bulk_name="enqueue_many"),
        System("procrastinate", "Procrastinate", "postgres", "procrastinate_peer", "procrastinate",
               ("procrastinate", "psycopg"), slots, procrastinate_worker,
               lambda k, n: f"`--concurrency {n}` (event loop)", prepare=True,
               bulk_name="batch_defer_async"),
        System("taskmill-sqlite", "taskmill", "sqlite", "taskmill_peer", "taskmill", ("taskmill",), slots,
               tm, tm_setting, prepare=True, bulk_name="enqueue_many"),
        System("huey-sqlite", "Huey", "sqlite", "huey_peer", "huey", ("huey",), slots, huey_worker,
               lambda k, n: f"`-w {n} -k {'process' if k == 'cpu' else 'thread'}`"),
    ]


# -- the stores -----------------------------------------------------------------------------------


class Stores:
    """Connections for namespaces, cleanup and the raw limits; `problem[store]` says why a store
    cannot be used in this run."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.problem: dict[str, str] = {}
        self.redis: Any = None
        self.redis_error: type[BaseException] = OSError
        try:
            import redis
        except ImportError as exc:
            self.problem["redis"] = f"redis-py is not installed in this venv ({exc})"
        else:
            self.redis_error = redis.RedisError
            try:
                client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=30)
                client.ping()
                self.redis = client
            except redis.RedisError as exc:
                self.problem["redis"] = f"Redis at {REDIS_URL} is not reachable ({exc})"
        try:
            import psycopg
        except ImportError as exc:
            self.problem["postgres"] = f"psycopg is not installed in this venv ({exc})"
        else:
            try:
                self._create_database(psycopg)
                with psycopg.connect(PG_DSN, connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
            except psycopg.Error as exc:
                self.problem["postgres"] = f"PostgreSQL at {PG_DSN} is not usable ({exc})"

    @staticmethod
    def _create_database(psycopg: Any) -> None:
        name = PG_DSN.rsplit("/", 1)[-1].split("?")[0]
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return
            with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(f'CREATE DATABASE "{name}"')

    def delete_keys(self, pattern: str) -> None:
        batch = []
        for key in self.redis.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self.redis.delete(*batch)
                batch = []
        if batch:
            self.redis.delete(*batch)

    @contextlib.contextmanager
    def db15_lock(self, patterns: tuple[str, ...]) -> Iterator[None]:
        """For libraries whose keys cannot take a prefix: one at a time in db 15, their keys
        deleted before and after."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + 600
        while not self.redis.set(LOCK_KEY, token, nx=True, ex=1800):
            if time.monotonic() > deadline:
                raise BenchError("Redis db 15 stayed locked by another benchmark for 10 minutes")
            time.sleep(0.5)
        try:
            for pattern in patterns:
                self.delete_keys(pattern)
            yield
        finally:
            for pattern in patterns:
                self.delete_keys(pattern)
            self.redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then "
                            "return redis.call('del', KEYS[1]) end return 0", 1, LOCK_KEY, token)

    @contextlib.contextmanager
    def fresh(self, system: System) -> Iterator[tuple[str, str]]:
        """A namespace of its own for one measurement, and the URL the adapter gets."""
        ns = f"bpeers{uuid.uuid4().hex[:12]}"
        if system.store == "redis":
            url = f"{REDIS_URL}?prefix={ns}" if system.is_taskmill else REDIS_URL
            with self.db15_lock(system.shared_keys) if system.shared_keys else contextlib.nullcontext():
                try:
                    yield ns, url
                finally:
                    self.delete_keys(f"*{ns}*")
        elif system.store == "postgres":
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{ns}"')
            try:
                yield ns, (f"{PG_DSN}?schema={ns}" if system.is_taskmill else PG_DSN)
            finally:
                with psycopg.connect(PG_DSN, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{ns}" CASCADE')
        else:
            path = self.workdir / f"{ns}.db"
            try:
                yield ns, (f"sqlite:///{path}" if system.is_taskmill else str(path))
            finally:
                for suffix in ("", "-wal", "-shm", "-journal"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{path}{suffix}")

    # -- the raw driver's limit ---------------------------------------------------------------

    def raw(self, store: str, one: int, bulk: int) -> tuple[float, float]:
        """(writes/s one per call, writes/s in one batch) of a small job-like payload."""
        payload = '{"task": "job", "args": [123, "noop"], "queue": "default"}'
        if store == "redis":
            key = f"bpeersraw{uuid.uuid4().hex[:12]}"
            r = self.redis
            try:
                t0 = time.perf_counter()
                for _ in range(one):
                    r.rpush(key, payload)
                one_rate = one / (time.perf_counter() - t0)
                pipe = r.pipeline(transaction=False)
                for _ in range(bulk):
                    pipe.rpush(key, payload)
                t0 = time.perf_counter()
                pipe.execute()
                return one_rate, bulk / (time.perf_counter() - t0)
            finally:
                r.delete(key)
        if store == "postgres":
            import psycopg

            ns = f"bpeersraw{uuid.uuid4().hex[:12]}"
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{ns}"')
                try:
                    conn.execute(f'CREATE TABLE "{ns}".jobs (id bigserial PRIMARY KEY, '
                                 f'payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())')
                    sql = f'INSERT INTO "{ns}".jobs (payload) VALUES (%s)'
                    t0 = time.perf_counter()
                    for _ in range(one):
                        conn.execute(sql, (payload,))  # autocommit: one commit each
                    one_rate = one / (time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    with conn.transaction(), conn.cursor() as cur:
                        cur.executemany(sql, [(payload,)] * bulk)
                    return one_rate, bulk / (time.perf_counter() - t0)
                finally:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{ns}" CASCADE')
        import sqlite3

        path = self.workdir / f"raw-{uuid.uuid4().hex[:12]}.db"
        lite = sqlite3.connect(path, isolation_level=None)
        try:
            lite.execute("PRAGMA journal_mode=WAL")
            lite.execute("PRAGMA synchronous=FULL")
            lite.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, "
                         "created_at REAL NOT NULL)")
            sql = "INSERT INTO jobs (payload, created_at) VALUES (?, ?)"
            t0 = time.perf_counter()
            for _ in range(one):
                lite.execute("BEGIN IMMEDIATE")
                lite.execute(sql, (payload, time.time()))
                lite.execute("COMMIT")
            one_rate = one / (time.perf_counter() - t0)
            now = time.time()
            t0 = time.perf_counter()
            lite.execute("BEGIN IMMEDIATE")
            lite.executemany(sql, [(payload, now)] * bulk)
            lite.execute("COMMIT")
            return one_rate, bulk / (time.perf_counter() - t0)
        finally:
            lite.close()
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{path}{suffix}")


RAW_LABELS = {"redis": ("redis-py, one RPUSH per call", "redis-py, RPUSHes in one pipeline"),
              "postgres": ("psycopg, one INSERT per commit", "psycopg, executemany in one commit"),
              "sqlite": ("sqlite3 WAL FULL, one INSERT per commit", "sqlite3, executemany in one commit")}


# -- measuring ------------------------------------------------------------------------------------


class BenchError(Exception):
    """A measurement could not complete: a timeout, a crash, a job lost or run twice."""


@dataclass
class Check:
    system: str
    scenario: str
    repeat: int
    ok: bool
    detail: str


@dataclass
class Results:
    values: dict[str, dict[str, list[float | str]]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def add(self, key: str, metric: str, value: float | str | None) -> None:
        if value is not None:
            self.values.setdefault(key, {}).setdefault(metric, []).append(value)


class Bench:
    def __init__(self, args: argparse.Namespace, stores: Stores, workdir: Path, loops: int) -> None:
        self.args = args
        self.stores = stores
        self.workdir = workdir
        self.loops = loops
        self.results = Results()
        self.env_base = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}

    def config(self, ns: str, url: str, slots: int) -> Config:
        records = self.workdir / f"rec-{ns}"
        records.mkdir()
        return Config(namespace=ns, records=str(records), url=url, slots=slots, loops=self.loops)

    def env(self, cfg: Config) -> dict[str, str]:
        return {**self.env_base, **cfg.env()}

    def drive(self, system: System, cfg: Config, phase: str, *args: str,
              timeout: float, worker: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
        out = Path(cfg.records).with_suffix(f".{phase}.json")
        logfile = Path(cfg.records).with_suffix(f".{phase}.log")
        with open(logfile, "wb") as logf:
            proc = subprocess.Popen([PY, "-m", "bench.peers.drive", f"{ADAPTERS}.{system.module}",
                                     str(out), phase, *args], env=self.env(cfg), cwd=ROOT,
                                    stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise BenchError(f"timeout: the {phase} driver ran over {timeout:.0f} s") from None
            finally:
                stop(proc, 0)
        if code != 0 or not out.exists():
            raise BenchError(f"the {phase} driver failed (exit {code}): {tail(logfile)}")
        data: dict[str, Any] = json.loads(out.read_text())
        if "error" in data:
            raise BenchError(f"timeout: {data['error']}")
        return data

    def start_worker(self, system: System, cfg: Config, kind: str) -> tuple[subprocess.Popen[bytes], float]:
        argv = system.worker(Slot(kind, cfg))
        logfile = open(Path(cfg.records).with_suffix(f".worker-{kind}.log"), "wb")  # noqa: SIM115
        t_launch = time.time()
        proc = subprocess.Popen(argv, env=self.env(cfg), cwd=ROOT, stdout=logfile,
                                stderr=subprocess.STDOUT, start_new_session=True)
        logfile.close()
        return proc, t_launch

    def worker_log(self, cfg: Config, kind: str) -> str:
        return tail(Path(cfg.records).with_suffix(f".worker-{kind}.log"))

    def wait_runs(self, proc: subprocess.Popen[bytes], cfg: Config, kind: str, target: int,
                  t_launch: float) -> None:
        """Until `target` runs are recorded; BenchError("timeout...") if the worker stalls."""
        cap = t_launch + FIRST_JOB_TIMEOUT + target * PER_JOB[kind]
        seen, last_progress = 0, time.time()
        while True:
            n = common.count(cfg.records)
            now = time.time()
            if n >= target:
                return
            if n > seen:
                seen, last_progress = n, now
            if proc.poll() is not None:
                raise BenchError(f"the worker exited ({proc.returncode}) after {n} of {target} jobs: "
                                 f"{self.worker_log(cfg, kind)}")
            limit = FIRST_JOB_TIMEOUT if seen == 0 else STALL_TIMEOUT
            if now - last_progress > limit or now > cap:
                raise BenchError(f"timeout: {n} of {target} jobs ran")
            time.sleep(0.02)

    def check(self, system: System, cfg: Config, expected: int, scenario: str, repeat: int,
              t_launch: float) -> list[common.Run]:
        """Each of the jobs 0..expected-1 ran once, in the worker (after its launch)."""
        runs = common.read(cfg.records)
        seen = Counter(r.index for r in runs)
        twice = sum(1 for c in seen.values() if c > 1)
        missing = sum(1 for i in range(expected) if i not in seen)
        extra = sum(1 for i in seen if not 0 <= i < expected)
        early = sum(1 for r in runs if r.t0 < t_launch)
        ok = not (twice or missing or extra or early)
        detail = (f"{expected} jobs, each ran once" if ok else
                  f"{expected} jobs: {twice} ran more than once, {missing} never ran, {extra} unknown, "
                  f"{early} ran before the worker was launched")
        self.results.checks.append(Check(system.key, scenario, repeat, ok, detail))
        if not ok:
            raise BenchError(f"exactly once broken: {detail}")
        return runs

    def drain(self, system: System, cfg: Config, kind: str, n: int, scenario: str,
              repeat: int) -> tuple[float, float]:
        """(jobs/s from the worker's launch to the end of the last job, seconds to the first start)."""
        proc, t_launch = self.start_worker(system, cfg, kind)
        try:
            self.wait_runs(proc, cfg, kind, n, t_launch)
            time.sleep(SETTLE)
        finally:
            stop(proc, STOP_TIMEOUT)
        runs = self.check(system, cfg, n, scenario, repeat, t_launch)
        log(f"    ({len({r.pid for r in runs})} worker process(es) ran the {n:,} jobs)")
        return n / (max(r.t1 for r in runs) - t_launch), min(r.t0 for r in runs) - t_launch

    # -- the scenarios ---------------------------------------------------------------------------

    def scenario(self, system: System, name: str, repeat: int, body: Callable[[], None]) -> None:
        try:
            body()
        except BenchError as exc:
            text = str(exc)
            log(f"  {system.key} {name}: {text}")
            if not any(c.system == system.key and c.scenario == name and c.repeat == repeat
                       for c in self.results.checks):
                self.results.checks.append(Check(system.key, name, repeat, False, text))
            label = "timeout" if text.startswith("timeout") else "failed"
            for metric in {"fill+drain": ("one", "bulk", "drain", "start"), "latency": ("p50", "p99"),
                           "io": ("io",), "cpu": ("cpu",)}[name]:
                self.results.add(system.key, metric, label)

    def fill_drain(self, system: System, repeat: int) -> None:
        single, bulk, res = self.args.single, self.args.jobs - self.args.single, self.results
        with self.stores.fresh(system) as (ns, url):
            cfg = self.config(ns, url, system.slots["noop"])
            if system.prepare:
                self.drive(system, cfg, "prepare", timeout=120)
            data = self.drive(system, cfg, "fill", str(single), str(bulk), "noop",
                              timeout=120 + self.args.jobs * 0.05)
            rate, start = self.drain(system, cfg, "noop", self.args.jobs, "fill+drain", repeat)
        res.add(system.key, "one", data["one"])
        res.add(system.key, "bulk", data["bulk"])
        res.add(system.key, "drain", rate)
        res.add(system.key, "start", start)
        bulk_text = f", bulk {data['bulk']:,.0f}/s" if data["bulk"] else ""
        log(f"  {system.key}: enqueue one {data['one']:,.0f}/s{bulk_text}, drain {rate:,.0f}/s "
            f"(first job {start:.2f} s after launch)")

    def latency(self, system: System, repeat: int) -> None:
        samples = self.args.samples
        with self.stores.fresh(system) as (ns, url):
            cfg = self.config(ns, url, system.slots["noop"])
            if system.prepare:
                self.drive(system, cfg, "prepare", timeout=120)
            proc, t_launch = self.start_worker(system, cfg, "noop")
            try:
                data = self.drive(system, cfg, "latency", str(samples), timeout=180 + samples * 2)
                self.wait_runs(proc, cfg, "noop", samples + 1, t_launch)
                time.sleep(SETTLE)
            finally:
                stop(proc, STOP_TIMEOUT)
            runs = self.check(system, cfg, samples + 1, "latency", repeat, t_launch)
        stamps = data["stamps"]
        waits = sorted(r.t0 - stamps[r.index] for r in runs if r.index < samples)
        p50, p99 = percentile(waits, 50) * 1000, percentile(waits, 99) * 1000
        self.results.add(system.key, "p50", p50)
        self.results.add(system.key, "p99", p99)
        log(f"  {system.key}: latency p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(waits)} samples)")

    def kind_drain(self, system: System, kind: str, n: int, repeat: int) -> None:
        metric = "io" if kind == "sleep" else "cpu"
        with self.stores.fresh(system) as (ns, url):
            cfg = self.config(ns, url, system.slots[kind])
            if system.prepare:
                self.drive(system, cfg, "prepare", timeout=120)
            self.drive(system, cfg, "fill", "0", str(n), kind, timeout=120 + n * 0.05)
            rate, _ = self.drain(system, cfg, kind, n, metric, repeat)
        self.results.add(system.key, metric, rate)
        log(f"  {system.key}: {metric} drain of {n:,} {rate:,.1f} jobs/s")

    def run_system(self, system: System, repeat: int) -> None:
        self.scenario(system, "fill+drain", repeat, lambda: self.fill_drain(system, repeat))
        self.scenario(system, "latency", repeat, lambda: self.latency(system, repeat))
        if self.args.io_jobs:
            self.scenario(system, "io", repeat,
                          lambda: self.kind_drain(system, "sleep", self.args.io_jobs, repeat))
        if self.args.cpu_jobs:
            self.scenario(system, "cpu", repeat,
                          lambda: self.kind_drain(system, "cpu", self.args.cpu_jobs, repeat))


def stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the worker's process group, then SIGKILL after `grace` seconds."""
    if proc.poll() is None and grace > 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group: children of a worker that exited too
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def tail(path: Path, lines: int = 3) -> str:
    """The last lines a process printed, on one line (the whole log stays in the run's folder)."""
    try:
        text = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return "(no output)"
    return " / ".join(text[-lines:]) or "(no output)"


def cell(text: str, limit: int = 200) -> str:
    """Free text made safe for one Markdown table cell."""
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


# -- the table ------------------------------------------------------------------------------------

COLUMNS = [("one", "enqueue one /s", "rate"), ("bulk", "bulk enqueue /s", "rate"),
           ("drain", "drain /s", "rate"), ("start", "start → 1st job", "s"),
           ("p50", "latency p50", "ms"), ("p99", "latency p99", "ms"),
           ("io", "I/O jobs /s", "rate"), ("cpu", "CPU jobs /s", "rate")]
TIMES = "\u00d7"
STORE_TITLES = {"redis": "Redis", "postgres": "PostgreSQL", "sqlite": "SQLite"}


def median(values: list[float | str]) -> float | str | None:
    if not values:
        return None
    failed = [v for v in values if isinstance(v, str)]
    if failed:
        return failed[0]
    return statistics.median([v for v in values if not isinstance(v, str)])


def fmt(value: float | str | None, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if unit == "ms":
        return f"{value:,.2f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def ratio_cell(metric: str, unit: str, mine: float | str | None,
               peers: list[tuple[str, float | str | None]]) -> str:
    numbers = [(name, v) for name, v in peers if isinstance(v, float | int)]
    if not isinstance(mine, float | int) or not numbers or metric == "start":
        return "—"
    if unit == "ms":
        name, best = min(numbers, key=lambda p: p[1])
        return f"{mine / best:.2f}{TIMES} ({name}; lower is better)" if best else "—"
    name, best = max(numbers, key=lambda p: p[1])
    return f"{mine / best:.2f}{TIMES} ({name})"


def markdown(sys_list: list[System], measured: list[System], results: Results, raw: dict[str, Any],
             meta: dict[str, Any], skipped: list[str]) -> str:
    lines = [f"# taskmill beside its peers ({meta['date']})", "",
             f"Command: `{meta['command']}`. Machine: {meta['machine']}; load average (1, 5, 15 min) "
             f"{meta['load_before']} before the run, {'; '.join(meta['load_repeats'][1:])}"
             f"{' at the next repeats, ' if len(meta['load_repeats']) > 1 else ''}"
             f"{meta['load_after']} after (those include the benchmark's own processes). "
             f"Python {meta['python']}. {meta['repeats']} repeat(s), medians.", "",
             f"Jobs: enqueue one at a time {meta['single']:,}, bulk {meta['bulk']:,} in one call, "
             f"drain {meta['jobs']:,} (those), latency {meta['samples']} samples; I/O-bound: "
             f"{meta['io_jobs']:,} jobs of a 10 ms sleep; CPU-bound: {meta['cpu_jobs']:,} jobs of "
             f"{meta['cpu_ms']:.0f} ms of pure-Python CPU. Rates are jobs/s; drains are timed from the "
             f"launch of the worker command to the end of the last job.", ""]
    for store in ("redis", "postgres", "sqlite"):
        rows = [s for s in measured if s.store == store]
        if not rows:
            continue
        lines += [f"## {STORE_TITLES[store]}", "",
                  "| system | " + " | ".join(c[1] for c in COLUMNS) + " | each job ran once |",
                  "|---|" + "---:|" * len(COLUMNS) + "---|"]
        medians: dict[str, dict[str, float | str | None]] = {}
        for s in rows:
            vals = results.values.get(s.key, {})
            medians[s.key] = {m: median(vals.get(m, [])) for m, _, _ in COLUMNS}
            checks = [c for c in results.checks if c.system == s.key]
            bad = [c for c in checks if not c.ok]
            once = (f"✔ {len(checks)}/{len(checks)}" if checks and not bad else
                    f"✘ {bad[0].scenario}: {cell(bad[0].detail)}" if bad else "—")
            cells = [fmt(medians[s.key][m], u) for m, _, u in COLUMNS]
            lines.append(f"| {s.name} {s.version()} | " + " | ".join(cells) + f" | {once} |")
        mine = next((s for s in rows if s.is_taskmill), None)
        peers = [s for s in rows if not s.is_taskmill]
        if mine is not None and peers:
            cells = [ratio_cell(m, u, medians[mine.key][m], [(p.name, medians[p.key][m]) for p in peers])
                     for m, _, u in COLUMNS]
            lines.append("| **taskmill ÷ best peer** | " + " | ".join(cells) + " | |")
        if store in raw:
            one, bulk = raw[store]
            lines.append(f"| raw driver limit | {fmt(median(one), 'rate')} | {fmt(median(bulk), 'rate')} | "
                         + " | ".join("—" for _ in COLUMNS[2:]) + f" | {RAW_LABELS[store][0]}; "
                         f"{RAW_LABELS[store][1]} |")
        lines.append("")
    lines += ["## Worker settings", "",
              "| system | store | drain and latency | I/O-bound | CPU-bound | bulk enqueue |",
              "|---|---|---|---|---|---|"]
    for s in measured:
        lines.append(f"| {s.name} {s.version()} | {s.store} | {s.setting('noop', s.slots['noop'])} | "
                     f"{s.setting('sleep', s.slots['sleep'])} | {s.setting('cpu', s.slots['cpu'])} | "
                     f"{s.bulk_name} |")
    if skipped:
        lines += ["", "Not measured in this run:", ""] + [f"- {line}" for line in skipped]
    return "\n".join(lines) + "\n"


# -- main -----------------------------------------------------------------------------------------


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 jobs, 1 repeat, 50 latency "
                        "samples, 500 I/O jobs, 50 CPU jobs")
    parser.add_argument("--repeats", type=int, help="repeats (default 3, quick 1)")
    parser.add_argument("--jobs", type=int, help="jobs drained (default 10,000)")
    parser.add_argument("--single", type=int, help="of those, enqueued one at a time (default 2,000)")
    parser.add_argument("--samples", type=int, help="latency samples (default 200)")
    parser.add_argument("--io-jobs", type=int, help="I/O-bound jobs (default 2,000; 0 to skip)")
    parser.add_argument("--cpu-jobs", type=int, help="CPU-bound jobs (default 200; 0 to skip)")
    parser.add_argument("--systems", help="comma-separated keys to run (default all); see --list")
    parser.add_argument("--list", action="store_true", help="list the systems and exit")
    parser.add_argument("--taskmill-worker", choices=("auto", "cli", "script"), default="auto",
                        help="taskmill's worker: `taskmill worker --app ...` (cli), "
                             "`mill.worker(...).run()` in a small script, or the CLI where it is "
                             "importable (auto, the default)")
    parser.add_argument("--out", default=str(HERE / "results" / "latest.md"), help="Markdown table")
    parser.add_argument("--json", default=None, help="raw figures and checks (default: --out with .json)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeats = args.repeats or (1 if quick else 3)
    args.jobs = args.jobs or (1_000 if quick else 10_000)
    args.single = min(args.jobs, args.single or (500 if quick else 2_000))
    args.samples = args.samples or (50 if quick else 200)
    args.io_jobs = (500 if quick else 2_000) if args.io_jobs is None else args.io_jobs
    args.cpu_jobs = (50 if quick else 200) if args.cpu_jobs is None else args.cpu_jobs
    use_cli = args.taskmill_worker == "cli" or (args.taskmill_worker == "auto"
                                                 and taskmill_cli_available())
    all_systems = systems(use_cli)
    if args.list:
        for s in all_systems:
            print(f"{s.key:20} {s.store:9} {s.name}")
        return 0
    wanted = set(args.systems.split(",")) if args.systems else None
    if wanted and wanted - {s.key for s in all_systems}:
        parser.error(f"unknown system(s): {', '.join(sorted(wanted - {s.key for s in all_systems}))}")

    load_before = loadavg()
    log(f"load average {load_before}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        workdir = Path(tmp)
        stores = Stores(workdir)
        skipped: list[str] = []
        measured: list[System] = []
        for s in all_systems:
            if wanted is not None and s.key not in wanted:
                continue
            reason = stores.problem.get(s.store) or s.missing()
            if reason:
                line = f"{s.key}: skipped, {reason}"
                skipped.append(line)
                log(f"SKIP {line}")
            else:
                measured.append(s)
        stores_used = sorted({s.store for s in measured})
        loops = common.calibrate()
        t0 = time.thread_time()
        common.burn(loops)
        cpu_ms = (time.thread_time() - t0) * 1000
        log(f"CPU job: {loops:,} loops, {cpu_ms:.1f} ms here")
        bench = Bench(args, stores, workdir, loops)
        raw: dict[str, tuple[list[float | str], list[float | str]]] = {}
        loads: list[str] = []
        for repeat in range(args.repeats):
            loads.append(loadavg())
            log(f"repeat {repeat + 1}/{args.repeats} (load {loads[-1]})")
            for store in stores_used:
                try:
                    one, many = stores.raw(store, args.single, args.jobs)
                except Exception as exc:  # a raw limit that cannot be taken is reported, not fatal
                    log(f"  raw {store}: failed ({exc})")
                    continue
                raw.setdefault(store, ([], []))
                raw[store][0].append(one)
                raw[store][1].append(many)
                log(f"  raw {store}: {one:,.0f}/s one per call, {many:,.0f}/s in one batch")
            for s in measured:
                bench.run_system(s, repeat)
    load_after = loadavg()
    meta = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": os.environ.get("BENCH_PEERS_COMMAND") or " ".join(
                ["bench/peers/run.py", *(argv if argv is not None else sys.argv[1:])]),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
            "load_before": load_before, "load_after": load_after, "load_repeats": loads,
            "python": platform.python_version(), "repeats": args.repeats, "jobs": args.jobs,
            "single": args.single, "bulk": args.jobs - args.single, "samples": args.samples,
            "io_jobs": args.io_jobs, "cpu_jobs": args.cpu_jobs, "cpu_ms": cpu_ms}
    text = markdown(all_systems, measured, bench.results, raw, meta, skipped)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    json_path = Path(args.json) if args.json else out.with_suffix(".json")
    json_path.write_text(json.dumps({
        "meta": meta, "skipped": skipped,
        "systems": {s.key: {"name": s.name, "store": s.store, "version": s.version(),
                            "settings": {k: s.setting(k, n) for k, n in s.slots.items()},
                            "values": bench.results.values.get(s.key, {})} for s in measured},
        "raw": raw, "checks": [vars(c) for c in bench.results.checks]}, indent=1))
    log(f"wrote {out} and {json_path}")
    failed = [c for c in bench.results.checks if not c.ok]
    for c in failed:
        log(f"FAILED {c.system} {c.scenario} (repeat {c.repeat + 1}): {c.detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
