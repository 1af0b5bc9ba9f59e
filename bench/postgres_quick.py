"""A quick look at the PostgreSQL backend's speed, next to raw psycopg in the same run.

    .venv/bin/python bench/postgres_quick.py [--dsn postgresql://postgres@127.0.0.1/test]
                                             [--repeats 3] [--million]

Each figure is the median of `--repeats` runs, each in a fresh schema (dropped afterwards). Not a
test: the numbers depend on the machine and on what else runs on it. Raw figures use the same
schema, table and indexes (created by taskmill) through plain psycopg, so the ratio is taskmill's
own cost.

- enqueue one at a time: `mill.enqueue("noop")` N times, vs one raw INSERT per commit (autocommit:
  one round trip and one WAL flush each, the floor for a durable one-call enqueue), the two in
  alternating blocks of 50 so that the machine's changing load weighs on both alike;
- enqueue_many of 10,000: one `mill.enqueue_many`, vs a raw COPY of the same rows in one transaction;
- claim + complete, one thread: `backend.claim` of 8 (as a worker at concurrency 8) or 100, then
  one `backend.apply` of the batch; `backend.apply_and_claim` of 8 (what a worker's writer calls:
  the batch written and the next claimed in one statement); vs the raw SKIP LOCKED claim of 100
  plus one completion UPDATE per job (autocommit), the issue's reference;
- with `--million`: a million finished jobs in the table, then the time of one claim, promote,
  rescue scan and prune scan, to show the partial indexes keep them as fast as on an empty table.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taskmill import Mill
from taskmill.backends.postgres import PostgresBackend
from taskmill.job import JobState, Update
from taskmill.transitions import Succeeded, finish

BLOCK = 50  # enqueues one at a time: taskmill and raw alternate in blocks of this many
COLUMNS = ("task, queue, state, args, kwargs, priority, max_attempts, retry, unique_key, "
           "created_at, scheduled_at, max_iterations")


@contextlib.contextmanager
def fresh(dsn: str) -> Iterator[tuple[Mill, str]]:
    """A Mill on a new schema (created by its first use), and the schema's name."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    mill = Mill(f"{dsn}?schema={schema}")

    @mill.task(retry=0)
    def noop(ctx: Any) -> None:
        return None

    mill.backend.migrate()  # type: ignore[attr-defined]
    try:
        yield mill, schema
    finally:
        mill.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def rate(count: int, work: Callable[[], None]) -> float:
    start = time.perf_counter()
    work()
    return count / (time.perf_counter() - start)


def raw_row() -> tuple[Any, ...]:
    now = datetime.now(UTC)
    return ("noop", "default", "queued", "[]", "{}", 0, 1, '{"backoff": 0}', "k", now, now, 1000)


def enqueue_one(dsn: str, n: int) -> tuple[float, float]:
    with fresh(dsn) as (mill, schema), psycopg.connect(dsn, autocommit=True) as raw:
        mill.enqueue("noop")  # the pool is up and the statement prepared before the clock starts
        sql = f'INSERT INTO "{schema}".jobs ({COLUMNS}) VALUES ({", ".join(["%s"] * 12)})'
        for _ in range(10):
            raw.execute(sql, raw_row(), prepare=True)
        # In alternating blocks, so that a change of load on a shared machine hits both alike.
        ours_s = theirs_s = 0.0
        for _ in range(0, n, BLOCK):
            ours_s += BLOCK / rate(BLOCK, lambda: [mill.enqueue("noop") for _ in range(BLOCK)]
                                   and None)
            theirs_s += BLOCK / rate(BLOCK, lambda: [raw.execute(sql, raw_row(), prepare=True)
                                                     for _ in range(BLOCK)] and None)
    return n / ours_s, n / theirs_s


def enqueue_many(dsn: str, n: int) -> tuple[float, float]:
    with fresh(dsn) as (mill, schema), psycopg.connect(dsn) as raw:
        mill.enqueue("noop")

        def copy() -> None:
            with raw.cursor().copy(f'COPY "{schema}".jobs ({COLUMNS}) FROM STDIN') as cp:
                for _ in range(n):
                    cp.write_row(raw_row())
            raw.commit()

        ours = rate(n, lambda: mill.enqueue_many([{"task": "noop"}] * n) and None)
        theirs = rate(n, copy)
    return ours, theirs


def claim_complete(dsn: str, n: int, batch: int) -> float:
    """Jobs/s claimed and completed by one thread, a claim of `batch` then one apply of it."""
    with fresh(dsn) as (mill, _):
        backend = mill.backend
        mill.enqueue_many([{"task": "noop"}] * n)
        rng = random.Random(1)

        def drain() -> None:
            done = 0
            while done < n:
                now = datetime.now(UTC)
                jobs = backend.claim(None, batch, "w", f"t{done}", now + timedelta(seconds=30), now)
                if not jobs:
                    break
                end = datetime.now(UTC)
                backend.apply([Update(finish(j, Succeeded(None), end, rng), JobState.RUNNING,
                                      j.claim_token) for j in jobs], end)
                done += len(jobs)

        return rate(n, drain)


def apply_and_claim(dsn: str, n: int, batch: int) -> float:
    """Jobs/s of one thread that writes each batch it finished and claims the next in one call,
    as a worker's writer does."""
    with fresh(dsn) as (mill, _):
        backend: Any = mill.backend
        mill.enqueue_many([{"task": "noop"}] * n)
        rng = random.Random(1)

        def drain() -> None:
            now = datetime.now(UTC)
            jobs = backend.claim(None, batch, "w", "t", now + timedelta(seconds=30), now)
            round_ = 0
            while jobs:
                round_ += 1
                now = datetime.now(UTC)
                done = [Update(finish(j, Succeeded(None), now, rng), JobState.RUNNING,
                               j.claim_token) for j in jobs]
                _, jobs = backend.apply_and_claim(done, now, None, batch, "w", f"t{round_}",
                                                  now + timedelta(seconds=30))

        return rate(n, drain)


def raw_claim_complete(dsn: str, n: int, batch: int) -> float:
    """The issue's reference: a SKIP LOCKED claim of `batch`, one completion UPDATE per job."""
    with fresh(dsn) as (mill, schema), psycopg.connect(dsn, autocommit=True) as raw:
        mill.enqueue_many([{"task": "noop"}] * n)
        claim = (f'UPDATE "{schema}".jobs SET state = \'running\', attempts = attempts + 1, '
                 f'claim_token = %s WHERE id IN (SELECT id FROM "{schema}".jobs '
                 f"WHERE state = 'queued' ORDER BY priority DESC, scheduled_at, id LIMIT %s "
                 f"FOR UPDATE SKIP LOCKED) RETURNING id")
        done_sql = (f'UPDATE "{schema}".jobs SET state = \'succeeded\', finished_at = now(), '
                    f"claim_token = NULL WHERE id = %s AND claim_token = %s")

        def drain() -> None:
            done = 0
            while done < n:
                ids = [r[0] for r in raw.execute(claim, ("t", batch), prepare=True)]
                if not ids:
                    break
                for job_id in ids:
                    raw.execute(done_sql, (job_id, "t"), prepare=True)
                done += len(ids)

        return rate(n, drain)


def million(dsn: str, rows: int) -> dict[str, float]:
    """Milliseconds of each scheduler query with `rows` finished jobs and a few live ones."""
    out: dict[str, float] = {}
    with fresh(dsn) as (mill, schema):
        backend = mill.backend
        assert isinstance(backend, PostgresBackend)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                f'INSERT INTO "{schema}".jobs (task, queue, state, args, kwargs, max_attempts, '
                f"retry, created_at, scheduled_at, finished_at, max_iterations) SELECT 'noop', "
                f"'default', 'succeeded', '[]', '{{}}', 1, '{{}}', now(), now(), "
                f"now() - interval '1 hour', 1 FROM generate_series(1, %s)", (rows,))
            conn.execute(f'VACUUM ANALYZE "{schema}".jobs')
        now = datetime.now(UTC)
        mill.enqueue_many([{"task": "noop"}] * 100)
        mill.enqueue_many([{"task": "noop", "delay": 0.001}] * 100)
        backend.claim(None, 10, "w", "old", now - timedelta(seconds=1), now)

        def timed(name: str, call: Callable[[], Any]) -> None:
            call()
            best = min(_seconds(call) for _ in range(5))
            out[name] = best * 1000

        later = datetime.now(UTC) + timedelta(seconds=1)
        timed("claim 8", lambda: backend.claim(None, 8, "w", "t", later, later))
        timed("promote due (scan)", lambda: backend.promote_due(later, 1000))
        timed("next due", backend.next_due)
        timed("rescue scan (expired)", lambda: backend.expired(later, 100))
        timed("prune scan (nothing old enough)", lambda: backend.prune(
            now - timedelta(days=1), 10_000))
        timed("stats", backend.stats)
    return out


def _seconds(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--single", type=int, default=2000, help="jobs enqueued one at a time")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs of the bulk figures")
    parser.add_argument("--million", action="store_true",
                        help="also time scheduler queries with 1,000,000 finished jobs")
    args = parser.parse_args()
    runs: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        runs.setdefault(name, []).append(value)
        print(f"  {name}: {value:,.0f}", file=sys.stderr, flush=True)

    for _ in range(args.repeats):
        ours, raw = enqueue_one(args.dsn, args.single)
        record("enqueue one at a time (jobs/s)", ours)
        record("  raw psycopg, one INSERT per commit (rows/s)", raw)
        ours, raw = enqueue_many(args.dsn, args.jobs)
        record(f"enqueue_many of {args.jobs:,} (jobs/s)", ours)
        record(f"  raw psycopg, COPY of {args.jobs:,} rows in one transaction (rows/s)", raw)
        record("claim 8 + one apply of 8, one thread (jobs/s)",
               claim_complete(args.dsn, args.jobs, 8))
        record("claim 100 + one apply of 100, one thread (jobs/s)",
               claim_complete(args.dsn, args.jobs, 100))
        record("apply_and_claim of 8 per call, one thread (jobs/s)",
               apply_and_claim(args.dsn, args.jobs, 8))
        record("  raw psycopg, claim 100 + one UPDATE per job (jobs/s)",
               raw_claim_complete(args.dsn, args.jobs // 2, 100))
    print(f"| figure | median of {args.repeats} | min | max |")
    print("|---|---:|---:|---:|")
    for name, values in runs.items():
        print(f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f} "
              f"| {max(values):,.0f} |")
    one = statistics.median(runs["enqueue one at a time (jobs/s)"])
    raw_one = statistics.median(runs["  raw psycopg, one INSERT per commit (rows/s)"])
    print(f"\nenqueue one at a time is {one / raw_one:.0%} of raw single-INSERT commits")
    if args.million:
        print("\n| with 1,000,000 finished jobs | best of 5 (ms) |\n|---|---:|")
        for name, ms in million(args.dsn, 1_000_000).items():
            print(f"| {name} | {ms:.2f} |")


if __name__ == "__main__":
    main()
