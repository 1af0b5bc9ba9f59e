#!/usr/bin/env python3
"""taskmill's benchmark: `.venv/bin/python bench/run.py [--quick] [--repeats N] [--stores ...]`.

No-op jobs; per store (and per `synchronous` setting on SQLite), N repeats, medians:
- enqueue one at a time (jobs/s);
- `enqueue_many` of J jobs in one call (jobs/s);
- drain of J queued jobs by one worker process at concurrency 8 (jobs/s, worker start to the
  commit of the last job's completion), the worker a separate process started with subprocess;
- enqueue-to-start latency p50/p99 with an idle worker in another process;
and, in the same run, interleaved with those, the raw driver's limit for the same writes (see
raw.py). Each taskmill figure is given with its ratio to that raw limit. Every scenario checks
that each job ran (or was stored) exactly once, and the run fails if one did not.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
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
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from bench import raw  # noqa: E402
from bench.worker import make_mill  # noqa: E402
from taskmill import Mill  # noqa: E402

PG_DSN = os.environ.get("TASKMILL_BENCH_PG") or os.environ.get(
    "TASKMILL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TASKMILL_BENCH_REDIS") or os.environ.get(
    "TASKMILL_TEST_REDIS", "redis://127.0.0.1:6379/0")
CONCURRENCY = 8
BLOCK = 50  # enqueue one at a time: taskmill and the raw write alternate in blocks of this many
WARM_UP = 10  # raw writes made before the clock starts (a prepared statement, a connection)
LATENCY_GAP = 0.02  # seconds between two latency samples: the worker is idle when each arrives


class BenchError(Exception):
    """A scenario broke its check (a job lost or run twice) or could not run."""


@dataclass(frozen=True)
class Raw:
    """A raw driver measurement paired with a taskmill figure: what it does, and the call that
    measures it (given a tag naming the repeat) and returns its rate."""

    label: str
    run: Callable[[str], float] | None = None
    # Or, for enqueue one at a time: a call that makes one raw write, alternated with taskmill's.
    one: Callable[[], contextlib.AbstractContextManager[Callable[[], None]]] | None = None


# -- stores ---------------------------------------------------------------------------------------


@dataclass
class Store:
    """One store setting to measure: makes a fresh, empty namespace for each measurement."""

    name: str
    setting: str
    workdir: Path
    fresh: Callable[[str], contextlib.AbstractContextManager[str]]
    raw: dict[str, Raw] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.setting})" if self.setting else self.name


def sqlite_store(workdir: Path, synchronous: str, jobs: int, single: int) -> Store:
    @contextlib.contextmanager
    def fresh(tag: str) -> Iterator[str]:
        path = workdir / f"{tag}-{synchronous}-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}?synchronous={synchronous}"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")

    def path(tag: str) -> str:
        return str(workdir / f"raw-{tag}-{synchronous}-{uuid.uuid4().hex[:8]}.db")

    return Store("sqlite", f"synchronous={synchronous.upper()}", workdir, fresh, {
        "enqueue_one": Raw("one INSERT per commit",
                           one=lambda: raw.insert_one_call(path("one"), synchronous)),
        "enqueue_many": Raw("executemany, one commit",
                            lambda tag: raw.insert_many(path(tag), synchronous, jobs)),
        "drain": Raw(f"claim {CONCURRENCY} + {CONCURRENCY} completions per commit",
                     lambda tag: raw.drain(path(tag), synchronous, jobs, CONCURRENCY)),
    })


def postgres_store(workdir: Path, jobs: int, single: int) -> Store | str:
    try:
        import taskmill.backends.postgres  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as exc:
        return f"taskmill.backends.postgres is not importable ({exc})"
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_DSN} is not reachable ({exc})"

    @contextlib.contextmanager
    def fresh(tag: str) -> Iterator[str]:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in PG_DSN else "?"
        try:
            yield f"{PG_DSN}{sep}schema={schema}"
        finally:
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return Store("postgres", "synchronous_commit=on", workdir, fresh, {
        "enqueue_one": Raw("one INSERT per autocommit statement",
                           one=lambda: raw.pg_insert_one_call(PG_DSN)),
        "enqueue_many": Raw("COPY, one transaction", lambda tag: raw.pg_copy(PG_DSN, jobs)),
        "drain": Raw("SKIP LOCKED claim of 100 + one UPDATE per job",
                     lambda tag: raw.pg_drain(PG_DSN, jobs)),
    })


def redis_store(workdir: Path, jobs: int, single: int) -> Store | str:
    try:
        import taskmill.backends.redis  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as exc:
        return f"taskmill.backends.redis is not importable ({exc})"
    try:
        import redis
    except ImportError as exc:
        return f"redis-py is not installed ({exc})"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS_URL} is not reachable ({exc})"

    @contextlib.contextmanager
    def fresh(tag: str) -> Iterator[str]:
        prefix = f"bench_{uuid.uuid4().hex[:12]}"
        sep = "&" if "?" in REDIS_URL else "?"
        try:
            yield f"{REDIS_URL}{sep}prefix={prefix}"
        finally:
            keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i:i + 1000])

    return Store("redis", "", workdir, fresh, {
        "enqueue_one": Raw("one HSET per call",
                           one=lambda: raw.redis_hset_one_call(REDIS_URL, single + WARM_UP)),
        "enqueue_many": Raw("HSETs in one pipeline",
                            lambda tag: raw.redis_hset_pipeline(REDIS_URL, jobs)),
        "drain": Raw("claim + completion, two EVALSHA per job",
                     lambda tag: raw.redis_drain(REDIS_URL, jobs)),
    })


# -- taskmill scenarios -----------------------------------------------------------------------------


def _check_stored(mill: Mill, ids: list[str], n: int, what: str) -> None:
    counts = mill.stats().get("default", {})
    if len(ids) != n or len(set(ids)) != n or counts.get("queued") != n:
        raise BenchError(f"{what}: {n} jobs enqueued, {len(set(ids))} distinct ids returned, "
                         f"{counts.get('queued')} stored as queued")


def enqueue_one(url: str, n: int, raw_one: Raw | None = None) -> tuple[float, float | None]:
    """Jobs/s of `mill.enqueue` called n times, and of the raw write (if given) called n times,
    the two in alternating blocks of BLOCK calls."""
    mill = make_mill(url)
    mill.stats()  # open the store (create its schema, load its scripts) before the clock starts
    ids: list[str] = []
    ours = theirs = 0.0
    with raw_one.one() if raw_one and raw_one.one else contextlib.nullcontext() as call:
        for _ in range(WARM_UP if call else 0):
            call()
        for start in range(0, n, BLOCK):
            size = min(BLOCK, n - start)
            t0 = time.perf_counter()
            ids += [mill.enqueue("noop").id for _ in range(size)]
            ours += time.perf_counter() - t0
            if call:
                t0 = time.perf_counter()
                for _ in range(size):
                    call()
                theirs += time.perf_counter() - t0
    _check_stored(mill, ids, n, "enqueue one at a time")
    mill.close()
    return n / ours, (n / theirs if theirs else None)


def enqueue_many(url: str, n: int) -> float:
    """Jobs/s of one `mill.enqueue_many` of n jobs."""
    mill = make_mill(url)
    mill.stats()  # open the store (create its schema, load its scripts) before the clock starts
    specs = [{"task": "noop"} for _ in range(n)]
    t0 = time.perf_counter()
    jobs = mill.enqueue_many(specs)
    elapsed = time.perf_counter() - t0
    _check_stored(mill, [j.id for j in jobs], n, "enqueue_many")
    mill.close()
    return n / elapsed


def _worker(url: str, mode: str, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(HERE.parent), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.Popen([sys.executable, str(HERE / "worker.py"), url, mode, str(out),
                             str(CONCURRENCY)], env=env, cwd=str(HERE.parent))


def _read_runs(proc: subprocess.Popen[bytes], out: Path, what: str) -> dict[str, Any]:
    if proc.returncode != 0 or not out.exists():
        raise BenchError(f"{what}: the worker process exited with {proc.returncode}")
    data: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return data


def _check_ran_once(mill: Mill, ids: list[str], runs: list[list[Any]], what: str) -> None:
    ran = Counter(str(r[0]) for r in runs)
    twice = [i for i, c in ran.items() if c > 1]
    missing = set(ids) - set(ran)
    extra = set(ran) - set(ids)
    if twice or missing or extra:
        raise BenchError(f"{what}: {len(twice)} job(s) ran more than once, {len(missing)} never "
                         f"ran, {len(extra)} unknown ran")
    retried, after, seen = [], None, 0
    while True:
        page, after = mill.page(limit=10_000, after=after)
        seen += len(page)
        retried += [j.id for j in page if j.attempts != 1 or j.state != "succeeded"]
        if after is None:
            break
    if retried or seen != len(ids):
        raise BenchError(f"{what}: {len(retried)} job(s) not succeeded at the first attempt, "
                         f"{seen} stored for {len(ids)}")


def drain(url: str, n: int, workdir: Path) -> float:
    """Jobs/s of one worker process draining n queued jobs, start to last completion."""
    mill = make_mill(url)
    ids = [j.id for j in mill.enqueue_many([{"task": "noop"} for _ in range(n)])]
    out = workdir / f"drain-{uuid.uuid4().hex[:8]}.json"
    proc = _worker(url, "drain", out)
    try:
        proc.wait(timeout=max(120.0, n / 50))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    data = _read_runs(proc, out, "drain")
    _check_ran_once(mill, ids, data["runs"], "drain")
    mill.close()
    return n / (float(data["t_last"]) - float(data["t_start"]))


def latency(url: str, samples: int, workdir: Path) -> list[float]:
    """Seconds from the enqueue call to the task's start, with an idle worker in another process."""
    mill = make_mill(url)
    out = workdir / f"latency-{uuid.uuid4().hex[:8]}.json"
    proc = _worker(url, "serve", out)
    try:
        warm = mill.enqueue("noop")  # the worker is up and idle once this one has run
        warm.wait(timeout=60)
        sent: dict[str, float] = {}
        for _ in range(samples):
            time.sleep(LATENCY_GAP)
            t = time.time()
            sent[mill.enqueue("noop").id] = t
        deadline = time.monotonic() + 60
        while mill.stats().get("default", {}).get("succeeded", 0) < samples + 1:
            if time.monotonic() > deadline:
                raise BenchError("latency: the worker did not finish the jobs within 60 s")
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    data = _read_runs(proc, out, "latency")
    _check_ran_once(mill, [warm.id, *sent], data["runs"], "latency")
    mill.close()
    return [start - sent[str(job_id)] for job_id, start in data["runs"] if str(job_id) in sent]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


# -- the run --------------------------------------------------------------------------------------


@dataclass
class Row:
    store: str
    measure: str
    unit: str
    values: list[float] = field(default_factory=list)
    raw_values: list[float] = field(default_factory=list)
    raw_label: str = ""
    target: str = ""
    check: Callable[[float, float | None], bool] | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def raw_median(self) -> float | None:
        return statistics.median(self.raw_values) if self.raw_values else None

    @property
    def ratio(self) -> float | None:
        """Median of the per-repeat ratios: each taskmill figure against the raw one measured just
        before it, so that load from elsewhere hits both sides of a ratio alike."""
        if not self.raw_values:
            return None
        return statistics.median(v / r for v, r in zip(self.values, self.raw_values, strict=True))

    @property
    def spread(self) -> float:
        """(max - min) / median, as a share: how noisy the repeats were."""
        return (max(self.values) - min(self.values)) / self.median if self.median else 0.0


Target = tuple[str, Callable[[float, float | None], bool]]


def of_raw(share: float) -> Target:
    return f">= {share:.0%} of raw", lambda v, ratio: ratio is not None and ratio >= share


def per_s(floor: int) -> Target:
    return f">= {floor:,}/s", lambda v, ratio: v >= floor


def ms(ceiling: float) -> Target:
    return f"<= {ceiling:g} ms", lambda v, ratio: v <= ceiling


# The issues' targets on this 2-core machine, by store label: SQLite issue 3, PostgreSQL issue 5,
# Redis issue 6.
TARGETS: dict[str, dict[str, Target]] = {
    "sqlite (synchronous=FULL)": {"enqueue_one": of_raw(0.8), "enqueue_many": per_s(50_000),
                                  "drain": per_s(5_000), "p50": ms(5)},
    "sqlite (synchronous=NORMAL)": {"enqueue_one": per_s(20_000)},
    "postgres (synchronous_commit=on)": {"enqueue_one": of_raw(0.8), "enqueue_many": per_s(40_000),
                                         "drain": per_s(5_000), "p50": ms(2)},
    "redis": {"enqueue_one": of_raw(0.9), "enqueue_many": per_s(80_000), "drain": per_s(6_000),
              "p50": ms(0.5)},
}


def targets(store: Store, rows: dict[str, Row]) -> None:
    """The issue's targets next to the figures."""
    for key, (text, check) in TARGETS.get(store.label, {}).items():
        rows[key].target, rows[key].check = text, check


def measure(store: Store, repeats: int, jobs: int, single: int, samples: int,
            log: Callable[[str], None]) -> list[Row]:
    label = store.label
    rows = {
        "enqueue_one": Row(label, f"enqueue one at a time ({single:,} jobs)", "jobs/s"),
        "enqueue_many": Row(label, f"enqueue_many of {jobs:,}", "jobs/s"),
        "drain": Row(label, f"drain {jobs:,}, 1 worker process, concurrency {CONCURRENCY}",
                     "jobs/s"),
        "p50": Row(label, "enqueue-to-start latency p50", "ms"),
        "p99": Row(label, "enqueue-to-start latency p99", "ms"),
    }
    for key, paired in store.raw.items():
        rows[key].raw_label = paired.label
    targets(store, rows)
    scenarios: tuple[tuple[str, Callable[[str], tuple[float, float | None]]], ...] = (
        ("enqueue_one", lambda url: enqueue_one(url, single, store.raw.get("enqueue_one"))),
        ("enqueue_many", lambda url: (enqueue_many(url, jobs), None)),
        ("drain", lambda url: (drain(url, jobs, store.workdir), None)))
    for r in range(repeats):
        tag = f"r{r}"
        for key, run in scenarios:
            paired = store.raw.get(key)
            if paired and paired.run:
                rows[key].raw_values.append(paired.run(tag))
            with store.fresh(f"{key}-{tag}") as url:
                value, raw_value = run(url)
            rows[key].values.append(value)
            if raw_value is not None:
                rows[key].raw_values.append(raw_value)
            raw_text = f" (raw {rows[key].raw_values[-1]:,.0f})" if key in store.raw else ""
            log(f"  {label} repeat {r + 1}/{repeats}: {key} {rows[key].values[-1]:,.0f} "
                f"jobs/s{raw_text}")
        with store.fresh(f"latency-{tag}") as url:
            waits = latency(url, samples, store.workdir)
        rows["p50"].values.append(percentile(waits, 50) * 1000)
        rows["p99"].values.append(percentile(waits, 99) * 1000)
        log(f"  {label} repeat {r + 1}/{repeats}: latency p50 {rows['p50'].values[-1]:.2f} ms, "
            f"p99 {rows['p99'].values[-1]:.2f} ms ({len(waits)} samples)")
    return list(rows.values())


def fmt(value: float, unit: str) -> str:
    return f"{value:,.2f} ms" if unit == "ms" else f"{value:,.0f}/s"


def table(rows: list[Row]) -> str:
    lines = ["| store | measure | taskmill (median) | spread | raw limit (median) | ratio to raw | "
             "target |",
             "|---|---|---:|---:|---|---:|---|"]
    for row in rows:
        raw_median = row.raw_median
        raw_text = f"{fmt(raw_median, row.unit)} ({row.raw_label})" if raw_median else "—"
        ratio = f"{row.ratio:.0%}" if row.ratio is not None else "—"
        target = row.target
        if row.check is not None:
            target += " ✔" if row.check(row.median, row.ratio) else " ✘"
        lines.append(f"| {row.store} | {row.measure} | {fmt(row.median, row.unit)} | "
                     f"±{row.spread / 2:.0%} | {raw_text} | {ratio} | {target} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1,000 jobs, 1 repeat, 50 latency samples")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 3)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="jobs for enqueue_many and drain (default 10,000)")
    parser.add_argument("--single", type=int, default=None,
                        help="jobs enqueued one at a time (default 2,000)")
    parser.add_argument("--samples", type=int, default=None, help="latency samples (default 200)")
    parser.add_argument("--stores", default="sqlite,postgres,redis",
                        help="comma-separated: sqlite,postgres,redis")
    parser.add_argument("--synchronous", default="full,normal",
                        help="SQLite synchronous settings to run (default full,normal)")
    parser.add_argument("--out", default=str(HERE / "results" / "latest.md"),
                        help="where to write the Markdown table")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    jobs = args.jobs or (1_000 if args.quick else 10_000)
    single = args.single or min(jobs, 2_000)
    samples = args.samples or (50 if args.quick else 200)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    rows: list[Row] = []
    skipped: list[str] = []
    wanted = [s.strip() for s in args.stores.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="taskmill-bench-") as tmp:
        workdir = Path(tmp)
        stores: list[Store] = []
        for name in wanted:
            if name == "sqlite":
                stores += [sqlite_store(workdir, s.strip().lower(), jobs, single)
                           for s in args.synchronous.split(",") if s.strip()]
            elif name in ("postgres", "redis"):
                made = (postgres_store if name == "postgres" else redis_store)(workdir, jobs, single)
                if isinstance(made, str):
                    skipped.append(f"{name}: skipped: {made}")
                    log(f"{name}: skipped: {made}")
                else:
                    stores.append(made)
            else:
                parser.error(f"unknown store {name!r}")
        for store in stores:
            log(f"{store.label}: {repeats} repeat(s)")
            rows += measure(store, repeats, jobs, single, samples, log)
    load_after = os.getloadavg()
    import taskmill

    header = [
        f"# taskmill benchmark — {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{' '.join(['bench/run.py', *(argv if argv is not None else sys.argv[1:])])}`  ",
        f"taskmill {getattr(taskmill, '__version__', '?')}, Python {platform.python_version()}, "
        f"SQLite {__import__('sqlite3').sqlite_version}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after  ",
        f"No-op jobs; {repeats} repeat(s), medians; spread is ±half of (max - min) / median over "
        f"the repeats; the ratio is the median of per-repeat ratios (enqueue one at a time: the "
        f"raw write alternated with taskmill's in blocks of {BLOCK}; the others: raw measured "
        f"just before). "
        f"Every scenario checked that each job ran (or was stored) exactly once.",
        "",
    ]
    text = "\n".join([*header, table(rows), "", *(f"- {s}" for s in skipped), ""])
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
