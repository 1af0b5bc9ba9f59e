"""A quick look at the Redis backend's speed, next to raw redis-py in the same run.

    .venv/bin/python bench/redis_quick.py [--url redis://127.0.0.1:6379/0] [--repeats 3]

Each figure is the median of `--repeats` runs, each on a fresh key prefix (deleted afterwards;
never FLUSHDB). Not a test: the numbers depend on the machine and on what else runs on it.

- enqueue one at a time: `mill.enqueue("noop")` N times, and `backend.enqueue` of jobs built
  beforehand (the backend's part alone), vs a raw loop of one HSET per call (one round trip each,
  the floor for a one-call enqueue), measured right after; ratios are medians of per-repeat ratios;
- enqueue_many: one `mill.enqueue_many` of 10,000 specs, vs 10,000 HSETs in one pipeline;
- claim + complete: one thread claiming batches of 8 and completing them in one `apply`; the
  same with `apply_and_claim` (the completions of a batch and the next claim in one call, as a
  worker at concurrency 8 does); and one job at a time (two EVALSHA per job);
- memory per finished job: `MEMORY USAGE` of every key of the prefix once all have succeeded,
  per job (the shared Redis's `used_memory` moves with other tenants' work).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis

from taskmill import Mill
from taskmill.job import JobState, Update
from taskmill.transitions import Succeeded, finish


def fresh_mill(url: str) -> tuple[Mill, str]:
    prefix = f"bench_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in url else "?"
    mill = Mill(f"{url}{sep}prefix={prefix}")

    @mill.task(retry=0)
    def noop(ctx: Any) -> None:
        return None

    return mill, prefix


def wipe(client: redis.Redis, prefix: str) -> None:
    pattern = "{" + prefix + "}:*"
    batch: list[Any] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)
    for key in client.scan_iter(match=f"raw_{prefix}:*", count=1000):
        client.delete(key)


def key_bytes(client: redis.Redis, prefix: str) -> int:
    """Bytes Redis uses for the keys of an installation (MEMORY USAGE, exact for collections)."""
    keys = list(client.scan_iter(match="{" + prefix + "}:*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(int(size or 0) for size in pipe.execute())


def rate(count: int, work: Callable[[], None]) -> float:
    start = time.perf_counter()
    work()
    return count / (time.perf_counter() - start)


def enqueue_one(url: str, client: redis.Redis, n: int) -> tuple[float, float, float]:
    mill, prefix = fresh_mill(url)
    mill.enqueue("noop")  # connect and load the script before the clock starts
    fields = {"task": "noop", "queue": "default", "state": "queued", "args": "[]", "kwargs": "{}"}
    built = [mill.build("noop") for _ in range(n)]
    backend, now = mill.backend, mill.now()
    try:
        ours = rate(n, lambda: [mill.enqueue("noop") for _ in range(n)] and None)
        alone = rate(n, lambda: [backend.enqueue([job], now) for job in built] and None)
        raw = rate(n, lambda: [client.hset(f"raw_{prefix}:{i}", mapping=fields)
                               for i in range(n)] and None)
    finally:
        mill.close()
        wipe(client, prefix)
    return ours, alone, raw


def enqueue_many(url: str, client: redis.Redis, n: int) -> tuple[float, float]:
    mill, prefix = fresh_mill(url)
    mill.enqueue("noop")
    fields = {"task": "noop", "queue": "default", "state": "queued", "args": "[]", "kwargs": "{}"}

    def raw() -> None:
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.hset(f"raw_{prefix}:{i}", mapping=fields)
        pipe.execute()

    try:
        ours = rate(n, lambda: mill.enqueue_many([{"task": "noop"}] * n) and None)
        theirs = rate(n, raw)
    finally:
        mill.close()
        wipe(client, prefix)
    return ours, theirs


def claim_complete(url: str, client: redis.Redis, n: int, batch: int,
                   together: bool = False) -> tuple[float, float]:
    """Jobs/s claimed and completed by one thread in batches of `batch`; and the memory per
    finished job (bytes): MEMORY USAGE of the prefix's keys after the last apply, per job."""
    mill, prefix = fresh_mill(url)
    mill.enqueue("noop")
    backend = mill.backend
    backend.claim(None, 1, "w", "t", mill.now() + timedelta(seconds=30), mill.now())
    mill.enqueue_many([{"task": "noop"}] * n)
    rng = random.Random(1)

    def drain() -> None:
        done = 0
        now = mill.now()
        jobs = backend.claim(None, batch, "w", "tok", now + timedelta(seconds=30), now)
        while jobs:
            end = mill.now()
            updates = [Update(finish(j, Succeeded(None), end, rng), JobState.RUNNING,
                              j.claim_token) for j in jobs]
            done += len(jobs)
            if together:
                _, jobs = backend.apply_and_claim(  # type: ignore[attr-defined]
                    updates, end, None, batch, "w", f"tok{done}", end + timedelta(seconds=30))
            else:
                backend.apply(updates, end)
                jobs = backend.claim(None, batch, "w", f"tok{done}", end + timedelta(seconds=30),
                                     end)

    try:
        jobs_per_s = rate(n, drain)
        per_job = key_bytes(client, prefix) / (n + 1)
    finally:
        mill.close()
        wipe(client, prefix)
    return jobs_per_s, per_job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--single", type=int, default=2000, help="jobs enqueued one at a time")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs of the bulk figures")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.url)
    runs: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        runs.setdefault(name, []).append(value)

    for _ in range(args.repeats):
        ours, alone, raw = enqueue_one(args.url, client, args.single)
        record("enqueue one at a time, mill.enqueue (jobs/s)", ours)
        record("enqueue one at a time, backend.enqueue of built jobs (jobs/s)", alone)
        record("  raw redis-py, one HSET per call (ops/s)", raw)
        record("ratio mill.enqueue / raw (%)", 100 * ours / raw)
        record("ratio backend.enqueue / raw (%)", 100 * alone / raw)
        ours, raw = enqueue_many(args.url, client, args.jobs)
        record(f"enqueue_many of {args.jobs:,} (jobs/s)", ours)
        record(f"  raw redis-py, {args.jobs:,} HSETs pipelined (ops/s)", raw)
        record("ratio enqueue_many / raw pipelined (%)", 100 * ours / raw)
        per_s, per_job = claim_complete(args.url, client, args.jobs, 8)
        record("claim 8 + one apply of 8, one thread (jobs/s)", per_s)
        record("memory per finished job (bytes)", per_job)
        per_s, _ = claim_complete(args.url, client, args.jobs, 8, together=True)
        record("apply_and_claim of 8, one thread (jobs/s)", per_s)
        per_s, _ = claim_complete(args.url, client, args.jobs // 5, 1)
        record("claim 1 + apply 1 per job (jobs/s)", per_s)
    client.close()
    print(f"load average {os.getloadavg()[0]:.2f} at the end, {os.cpu_count()} CPUs\n")
    print(f"| figure | median of {args.repeats} | min | max |")
    print("|---|---:|---:|---:|")
    for name, values in runs.items():
        print(f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f} "
              f"| {max(values):,.0f} |")


if __name__ == "__main__":
    main()
