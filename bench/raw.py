"""The raw driver's limit for the writes taskmill makes, measured with the same schema and SQL.

SQLite: the taskmill schema in WAL mode at the same `synchronous` setting, plain `sqlite3` calls,
no taskmill code on the path. The `*_call` ones give a call that makes one write, which the
benchmark alternates with taskmill's in blocks (so a change of load weighs on both alike):
- `insert_one_call`: one `INSERT` per `BEGIN IMMEDIATE … COMMIT` (what one enqueue must write);
- `insert_many`: all rows in one transaction with `executemany` (what `enqueue_many` writes);
- `drain`: per transaction, the claim `UPDATE … RETURNING` of a batch of `batch` jobs plus one
  completion `UPDATE` (taskmill's `apply` query) per job.

PostgreSQL: plain psycopg on the `jobs` table of a schema taskmill created (with
`bench/postgres_quick.py`'s `fresh`, `raw_row`, `COLUMNS` and `raw_claim_complete`):
- `pg_insert_one_call`: one `INSERT` per autocommit statement (a round trip and a WAL flush);
- `pg_copy`: a `COPY` of all rows in one transaction;
- `pg_drain`: `raw_claim_complete`, a `SKIP LOCKED` claim of 100 then one completion `UPDATE` per
  job, on one connection.

Redis: plain redis-py on keys of a fresh prefix (wiped with `bench/redis_quick.py`'s `wipe`):
- `redis_hset_one_call`: one `HSET` (a round trip);
- `redis_hset_pipeline`: all `HSET`s in one pipeline;
- `redis_drain`: per job, a claim (`ZPOPMIN` + `HSET` in a script) and a token-checked completion
  (a script), two `EVALSHA` round trips per job, no taskmill script on the path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from taskmill.backends.sql import queries
from taskmill.backends.sqlite import PAGE_SIZE, statements

if TYPE_CHECKING:
    import redis

Q = queries("sqlite")
RETRY = '{"backoff":0}'  # retry=0, as the benchmark's task
KEY = hashlib.sha1(b"noop\x1fdefault\x1f\x1f[]\x1f{}").hexdigest()


def _row(i: int, now: float) -> tuple[Any, ...]:
    return ("noop", "default", "queued", "[]", "{}", 0, 1, RETRY, None, None, None, None, None,
            KEY, now, now, 1000, None)


def connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # as taskmill makes a new file
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("BEGIN IMMEDIATE")
    for statement in statements(Q["schema"]):
        conn.execute(statement)
    conn.execute("COMMIT")
    return conn


@contextlib.contextmanager
def insert_one_call(path: str, synchronous: str) -> Iterator[Callable[[], None]]:
    """A call that writes one job: one INSERT per committed transaction."""
    conn = connect(path, synchronous)
    sql, row = Q["insert_job"], _row(0, time.time())
    made = [0]

    def call() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql, row)
        conn.execute("COMMIT")
        made[0] += 1

    try:
        yield call
        _check_rows(conn.execute("SELECT count(*) FROM jobs").fetchone(), made[0], "INSERT")
    finally:
        conn.close()


def insert_many(path: str, synchronous: str, n: int) -> float:
    """Jobs/s of n INSERTs in one transaction."""
    conn = connect(path, synchronous)
    now = time.time()
    rows = [_row(i, now) for i in range(n)]
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(Q["insert_job"], rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return n / elapsed


def drain(path: str, synchronous: str, n: int, batch: int) -> float:
    """Jobs/s of claim-a-batch + complete-each-job, one transaction per batch."""
    conn = connect(path, synchronous)
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(Q["insert_job"], [_row(i, now) for i in range(n)])
    conn.execute("COMMIT")
    worker = f"raw:{os.getpid()}"
    done = 0
    t0 = time.perf_counter()
    while True:
        now = time.time()
        token = secrets.token_hex(8)
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(Q["claim"], {"now": now, "token": token, "worker": worker,
                                         "lease_until": now + 30, "limit": batch,
                                         "queues": None}).fetchall()
        if not rows:
            conn.execute("COMMIT")
            break
        finished = time.time()
        for row in rows:
            conn.execute(Q["apply"], {
                "id": row[0], "expect_state": "running", "expect_token": token,
                "state": "succeeded", "scheduled_at": now, "attempts": 1, "max_attempts": 1,
                "progress": 100.0, "progress_message": None, "result": None, "error": None,
                "started_at": now, "finished_at": finished, "iterations": 1, "state_data": None,
                "cancel_requested": 0, "cancel_reason": None, "claim_token": None,
                "worker": None, "lease_until": None})
        conn.execute("COMMIT")
        done += len(rows)
    elapsed = time.perf_counter() - t0
    left = conn.execute("SELECT count(*) FROM jobs WHERE state != 'succeeded'").fetchone()[0]
    conn.close()
    if done != n or left:
        raise AssertionError(f"raw drain finished {done} of {n} jobs, {left} left unfinished")
    return n / elapsed



# -- PostgreSQL (psycopg and bench/postgres_quick.py are imported only when measured) -------------


@contextlib.contextmanager
def pg_insert_one_call(dsn: str) -> Iterator[Callable[[], None]]:
    """A call that writes one job: one prepared INSERT per autocommit statement."""
    import psycopg

    from bench import postgres_quick as pq

    with pq.fresh(dsn) as (_, schema), psycopg.connect(dsn, autocommit=True) as conn:
        row = pq.raw_row()
        sql = f'INSERT INTO "{schema}".jobs ({pq.COLUMNS}) VALUES ({", ".join(["%s"] * len(row))})'
        made = [0]

        def call() -> None:
            conn.execute(sql, row, prepare=True)
            made[0] += 1

        yield call
        _check_rows(conn.execute(f'SELECT count(*) FROM "{schema}".jobs').fetchone(), made[0],
                    "INSERT")


def pg_copy(dsn: str, n: int) -> float:
    """Rows/s of a COPY of n rows in one transaction."""
    import psycopg

    from bench import postgres_quick as pq

    with pq.fresh(dsn) as (_, schema), psycopg.connect(dsn) as conn:
        rows = [pq.raw_row() for _ in range(n)]

        def copy() -> None:
            with conn.cursor().copy(f'COPY "{schema}".jobs ({pq.COLUMNS}) FROM STDIN') as cp:
                for row in rows:
                    cp.write_row(row)
            conn.commit()

        per_s = pq.rate(n, copy)
        _check_rows(conn.execute(f'SELECT count(*) FROM "{schema}".jobs').fetchone(), n, "COPY")
    return per_s


def pg_drain(dsn: str, n: int) -> float:
    """Jobs/s of a SKIP LOCKED claim of 100 plus one completion UPDATE per job, one connection."""
    from bench import postgres_quick as pq

    return pq.raw_claim_complete(dsn, n, 100)


def _check_rows(found: tuple[Any, ...] | None, n: int, what: str) -> None:
    if found is None or found[0] != n:
        raise AssertionError(f"raw {what} stored {found and found[0]} rows of {n}")


# -- Redis (redis-py and bench/redis_quick.py are imported only when measured) ---------------------

FIELDS: Mapping[Any, Any] = {"task": "noop", "queue": "default", "state": "queued", "args": "[]",
                             "kwargs": "{}"}
CLAIM = """
local id = redis.call('ZPOPMIN', KEYS[1])[1]
if not id then return false end
redis.call('HSET', ARGV[1] .. id, 'state', 'running', 'claim_token', ARGV[2])
return id
"""
COMPLETE = """
if redis.call('HGET', KEYS[1], 'claim_token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'succeeded', 'claim_token', '', 'finished_at', ARGV[2])
return 1
"""


@contextlib.contextmanager
def _redis_keys(url: str, n: int) -> Iterator[tuple[redis.Redis, str, list[str]]]:
    """A connected client, a fresh key prefix and n job keys under it, all wiped afterwards."""
    import redis

    from bench import redis_quick as rq

    client = redis.Redis.from_url(url)
    prefix = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        client.ping()  # connected before the clock starts
        base = f"raw_{prefix}:"
        yield client, base, [f"{base}{i}" for i in range(n)]
    finally:
        rq.wipe(client, prefix)
        client.close()


@contextlib.contextmanager
def redis_hset_one_call(url: str, n: int) -> Iterator[Callable[[], None]]:
    """A call that writes one job: one HSET (a round trip), for up to n calls."""
    with _redis_keys(url, n) as (client, _, keys):
        left = iter(keys)

        def call() -> None:
            client.hset(next(left), mapping=FIELDS)

        yield call


def redis_hset_pipeline(url: str, n: int) -> float:
    """HSETs/s of n HSETs in one pipeline."""
    from bench import redis_quick as rq

    with _redis_keys(url, n) as (client, _, keys):
        def send() -> None:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hset(key, mapping=FIELDS)
            pipe.execute()

        return rq.rate(n, send)


def redis_drain(url: str, n: int) -> float:
    """Jobs/s of a claim then a completion per job, two EVALSHA round trips each."""
    from bench import redis_quick as rq

    with _redis_keys(url, n) as (client, base, keys):
        queue = f"{base}queue"
        pipe = client.pipeline(transaction=False)
        for i, key in enumerate(keys):
            pipe.hset(key, mapping=FIELDS)
            pipe.zadd(queue, {str(i): i})
        pipe.execute()
        claim, complete = client.script_load(CLAIM), client.script_load(COMPLETE)
        done = [0]

        def work() -> None:
            token = secrets.token_hex(8)
            while (job_id := client.evalsha(claim, 1, queue, base, token)) is not None:
                done[0] += client.evalsha(complete, 1, base + job_id.decode(), token, str(time.time()))

        per_s = rq.rate(n, work)
        if done[0] != n:
            raise AssertionError(f"raw Redis drain completed {done[0]} of {n} jobs")
    return per_s
