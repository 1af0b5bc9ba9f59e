"""The raw driver's limit for the writes taskmill makes, measured with the same schema and SQL.

SQLite: the taskmill schema in WAL mode at the same `synchronous` setting, plain `sqlite3` calls,
no taskmill code on the path:
- `insert_one`: one `INSERT` per `BEGIN IMMEDIATE … COMMIT` (what one enqueue must write);
- `insert_many`: all rows in one transaction with `executemany` (what `enqueue_many` writes);
- `drain`: per transaction, the claim `UPDATE … RETURNING` of a batch of `batch` jobs plus one
  completion `UPDATE` (taskmill's `apply` query) per job.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from taskmill.backends.sql import queries
from taskmill.backends.sqlite import PAGE_SIZE, statements

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


def insert_one(path: str, synchronous: str, n: int) -> float:
    """Jobs/s of one INSERT per committed transaction."""
    conn = connect(path, synchronous)
    sql = Q["insert_job"]
    now = time.time()
    rows = [_row(i, now) for i in range(n)]
    t0 = time.perf_counter()
    for row in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql, row)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return n / elapsed


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


SQLITE: dict[str, Callable[..., float]] = {"insert_one": insert_one, "insert_many": insert_many,
                                           "drain": drain}
