"""PostgreSQL: many worker hosts on one database. psycopg 3 with its pool; `?schema=` isolates an
installation. Claims are one `FOR UPDATE SKIP LOCKED` statement; wake-ups are LISTEN/NOTIFY."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import select
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import pq
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import BackendUnavailable, ConfigError, TaskmillError
from ..job import Job, JobState, LogRecord, Update
from .base import Backend, JobFilter, NewLog, PeriodicState, external_connection
from .postgres_rows import APPLY_COLUMNS, INSERT_COLUMNS, apply_params, bigint_or, insert_params, to_job
from .sql import queries

log = logging.getLogger("taskmill.postgres")

SCHEMA_VERSION = 1
# The query that brings the schema from the version before to each version.
MIGRATIONS = {1: "schema"}
DEFAULT_SCHEMA = "taskmill"
LANE_RETRY = 10.0  # seconds: after the lane failed to open, the pool alone serves this long
COPY_FROM = 100  # batches of this many jobs or more are written by COPY (3 round trips, not 1)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,53}$")
_TERMINATED = (pq.TransactionStatus.UNKNOWN,)
@cache
def _dialect(schema: str) -> dict[str, str]:
    """The queries with this installation's schema and channel names filled in."""
    quoted, channel = f'"{schema}"', f'"taskmill_{schema}"'
    return {name: sql.replace("{schema}", quoted).replace("{channel}", channel)
            for name, sql in queries("postgres").items()}


def _flag(value: str, what: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{what} must be true or false, got {value!r}")


def _number(value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise ConfigError(f"{what} must be a positive number, got {value!r}")
    return number


class PostgresBackend(Backend):
    """Jobs in PostgreSQL tables of one schema. `postgresql://user@host/db?schema=NAME`; the
    options `migrate=false` (leave the schema to `taskmill migrate`), `pool_max=N` (connections
    per process, default 10) and `pool_timeout=SECONDS` (how long a call waits for a connection
    before it raises `BackendUnavailable`, default 5); the rest goes to libpq."""

    supports_external_connection = True
    notifies_on_enqueue = True

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ConfigError(f"not a postgresql:// URL (scheme {parts.scheme!r})")
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.schema = options.pop("schema", DEFAULT_SCHEMA)
        if not _IDENTIFIER.match(self.schema):
            raise ConfigError(f"schema must be a name of letters, digits and '_' (at most 54), "
                              f"got {self.schema!r}")
        self.auto_migrate = _flag(options.pop("migrate", "true"), "migrate")
        self.pool_max = int(_number(options.pop("pool_max", "10"), "pool_max"))
        self.pool_timeout = _number(options.pop("pool_timeout", "5"), "pool_timeout")
        options.setdefault("connect_timeout", "5")
        options.setdefault("application_name", f"taskmill:{self.schema}")
        self.conninfo = urlunsplit(parts._replace(query=urlencode(options)))
        try:
            psycopg.conninfo.conninfo_to_dict(self.conninfo)
        except psycopg.Error as exc:
            raise ConfigError(f"bad PostgreSQL URL {self._display()}: {exc}") from None
        self.channel = f"taskmill_{self.schema}"
        self.q = _dialect(self.schema)
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Any] | None = None
        self._pid = os.getpid()
        self._ready = False
        self._forked: list[Any] = []  # pools and connections of the parent: never used or closed
        self._listener: psycopg.Connection[Any] | None = None
        self._listen_lock = threading.Lock()
        self._lane: psycopg.Connection[Any] | None = None
        self._lane_lock = threading.Lock()
        self._lane_retry_at = 0.0
        self._wake = threading.Condition()
        self._wakes = 0

    def _display(self) -> str:
        """The URL without its password, for messages."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = (f"{parts.username}@" if parts.username else "") + host + (
            f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))

    # -- connections, and the one place driver errors are translated ------------------------

    @contextlib.contextmanager
    def _driver_errors(self) -> Iterator[None]:
        """Every psycopg error is translated here, and only here: a connection or server problem
        becomes `BackendUnavailable` (try again); a refused value a plain `TaskmillError`."""
        try:
            yield
        except PoolTimeout as exc:
            raise BackendUnavailable(f"PostgreSQL at {self._display()}: no connection within "
                                     f"{self.pool_timeout:g}s (is the server up?)") from exc
        except psycopg.Error as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if isinstance(exc, psycopg.DataError | psycopg.IntegrityError | psycopg.ProgrammingError):
                # The store refused a value: trying again cannot help, unlike an outage.
                raise TaskmillError(f"PostgreSQL refused the write: {detail}") from exc
            raise BackendUnavailable(f"PostgreSQL at {self._display()}: {detail}") from exc

    def _get_pool(self) -> ConnectionPool[Any]:
        if self._pool is not None and self._pid == os.getpid():
            return self._pool
        with self._lock:
            if self._pid != os.getpid():
                self._drop_inherited()
            if self._pool is None:
                pool: ConnectionPool[Any] = ConnectionPool(
                    self.conninfo, min_size=1, max_size=self.pool_max, open=False,
                    kwargs={"autocommit": True}, configure=_configure,
                    timeout=self.pool_timeout, reconnect_timeout=10.0,
                    name=f"taskmill:{self.schema}")
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    @contextlib.contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A live connection (autocommit): one statement is one transaction. The lane if no
        other thread is using it, else one from the pool."""
        with self._driver_errors():
            if not self._ready:
                self._prepare()
            pool = self._get_pool()
            taken = self._take_lane()
            if taken is not None:
                lane, held = taken
                try:
                    yield lane
                finally:
                    held.release()
                return
            conn = pool.getconn()
            for _ in range(pool.max_size):
                if _alive(conn):
                    break
                # The server ended it while it sat in the pool (a restart, pg_terminate_backend):
                # throw it away and take another, so the caller never sees a dead connection.
                conn.close()
                pool.putconn(conn)
                conn = pool.getconn()
            try:
                yield conn
            finally:
                pool.putconn(conn)

    def _take_lane(self) -> tuple[psycopg.Connection[Any], threading.Lock] | None:
        """The lane, this process's one connection kept outside the pool, and its lock, held;
        None if another thread holds it, the backend is closed, or the lane cannot be opened now
        (then the pool serves). A caller that finds it free skips the pool's checkout and
        return, which cost about as much as a quarter of a one-row insert's round trip."""
        held = self._lane_lock
        if not held.acquire(blocking=False):
            return None
        try:
            lane = self._lane
            if lane is not None and _alive(lane) and _idle(lane):
                return lane, held
            self._lane = None
            if lane is not None:
                with contextlib.suppress(psycopg.Error):
                    lane.close()
            lane = self._open_lane()
            if lane is not None:
                self._lane = lane
                return lane, held
        except BaseException:
            held.release()
            raise
        held.release()
        return None

    def _open_lane(self) -> psycopg.Connection[Any] | None:
        if self._pool is None or time.monotonic() < self._lane_retry_at:
            return None  # closed, or it failed to open a moment ago
        try:
            lane = psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.Error:
            self._lane_retry_at = time.monotonic() + LANE_RETRY
            return None
        try:
            _configure(lane)
        except BaseException:
            lane.close()
            raise
        return lane

    @contextlib.contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one transaction on a pooled connection."""
        with self._conn() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            yield cur

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor on a pooled autocommit connection: each statement commits on its own."""
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            yield cur

    def _rows(self, name: str, params: Any = None) -> list[Any]:
        with self._conn() as conn:
            return conn.execute(self.q[name], params).fetchall()

    def _drop_inherited(self) -> None:
        """After fork(): forget the parent's connections without closing them (closing would end
        the parent's sessions too); this process opens its own."""
        self._forked.extend(x for x in (self._pool, self._listener, self._lane) if x is not None)
        self._pool, self._listener, self._lane = None, None, None
        self._lane_lock = threading.Lock()  # a thread of the parent may have held it
        self._pid = os.getpid()

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._listen_lock = threading.Lock()
        self._wake = threading.Condition()
        self._drop_inherited()

    def close(self) -> None:
        if self._pid != os.getpid():
            self._drop_inherited()  # the parent's: never closed here, nor waited for
            return
        with self._lock:
            pool, self._pool = self._pool, None
            listener, self._listener = self._listener, None
            # A thread using the lane gives it back within its statement; one that does not
            # (stuck on a dead server) has its connection closed under it.
            got = self._lane_lock.acquire(timeout=self.pool_timeout)
            lane, self._lane = self._lane, None
            if got:
                self._lane_lock.release()
        for conn in (listener, lane):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
        if pool is not None:
            pool.close(timeout=5.0)

    # -- schema ----------------------------------------------------------------------------

    def _prepare(self) -> None:
        with self._lock:
            if self._ready:
                return
        if self.auto_migrate:
            self.migrate()
        else:
            version = self.schema_version()
            if version != SCHEMA_VERSION:
                raise ConfigError(f"the taskmill schema {self.schema!r} is at version {version}, "
                                  f"this taskmill needs {SCHEMA_VERSION}: run `taskmill migrate`")
        self._ready = True

    def schema_version(self) -> int:
        """The version of the schema in place (0: none)."""
        with self._driver_errors(), self._get_pool().connection() as conn:
            return self._version(conn)

    def _version(self, conn: psycopg.Connection[Any]) -> int:
        if not _one(conn.execute(self.q["meta_exists"], (self.schema,)))[0]:
            return 0
        row = conn.execute(self.q["schema_version"]).fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> int:
        """Create the schema, or bring it up to this taskmill's version; safe to run from many
        processes at once (they take turns on an advisory lock). Returns the version."""
        with self._driver_errors(), self._get_pool().connection() as conn, conn.transaction():
            conn.execute(self.q["lock_keys"], ([self._lock_key("migrate")],))
            if not _one(conn.execute(self.q["schema_exists"], (self.schema,)))[0]:
                conn.execute(self.q["create_schema"])
            conn.execute(self.q["create_meta"])
            version = self._version(conn)
            if version > SCHEMA_VERSION:
                raise ConfigError(f"the taskmill schema {self.schema!r} was written by a newer "
                                  f"taskmill (version {version}, this one knows {SCHEMA_VERSION})")
            for step in range(version + 1, SCHEMA_VERSION + 1):
                conn.execute(self.q[MIGRATIONS[step]])
                log.info("taskmill schema %r migrated to version %d", self.schema, step)
            conn.execute(self.q["set_schema_version"], (str(SCHEMA_VERSION),))
        self._ready = True
        return SCHEMA_VERSION

    def _lock_key(self, key: str) -> int:
        digest = hashlib.sha1(f"taskmill\x1f{self.schema}\x1f{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    # -- enqueue ---------------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[Job], now: datetime) -> list[Job]:
        """All or none, in one transaction; a batch without unique jobs is one statement. On an
        application's connection (`Mill.using`) the jobs join its transaction and nothing is
        committed here: the jobs, and the wake-up, exist once the application commits."""
        if not jobs:
            return []
        rows = [insert_params(job) for job in jobs]  # payload errors surface before any I/O
        outside = external_connection.get()
        if outside is not None:
            return self._enqueue_outside(outside, jobs, rows)
        if not any(job.unique and job.unique_key for job in jobs):
            with self._conn() as conn:
                return self._insert(conn, jobs, rows)
        with self._tx() as cur:
            return self._insert_unique(cur, jobs, rows)

    def _enqueue_outside(self, conn: Any, jobs: Sequence[Job], rows: list[tuple[Any, ...]]
                         ) -> list[Job]:
        if not isinstance(conn, psycopg.Connection):
            raise ConfigError(f"Mill.using() takes an open psycopg (sync) Connection, got "
                              f"{type(conn).__name__}")
        if not self._ready:
            with self._driver_errors():
                self._prepare()
        with self._driver_errors():
            # In an open transaction (or autocommit): a savepoint, or a transaction of our own.
            # On a connection with no transaction yet: run in the one psycopg begins, which
            # the application commits or rolls back.
            idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
            block = (contextlib.nullcontext() if idle and not conn.autocommit
                     else conn.transaction())
            with block:
                if not any(job.unique and job.unique_key for job in jobs):
                    return self._insert(conn, jobs, rows)
                with conn.cursor(row_factory=dict_row) as cur:
                    set_json_loads(json.loads, cur)  # whatever the application set
                    return self._insert_unique(cur, jobs, rows)

    def _insert(self, conn: psycopg.Connection[Any], jobs: Sequence[Job],
                rows: list[tuple[Any, ...]]) -> list[Job]:
        """One statement, one job or many; a big batch by COPY."""
        if len(jobs) == 1:
            jobs[0].id = str(_one(conn.execute(self.q["insert_job"], (*rows[0], self.channel)))[0])
            return list(jobs)
        if len(jobs) >= COPY_FROM:
            return self._copy(conn, jobs, rows)
        params: dict[str, Any] = {name: [row[i] for row in rows]
                                  for i, name in enumerate(INSERT_COLUMNS)}
        params["channel"] = self.channel
        new_ids = _one(conn.execute(self.q["insert_jobs"], params))[0]
        for job, new_id in zip(jobs, sorted(new_ids), strict=True):
            job.id = str(new_id)
        return list(jobs)

    def _copy(self, conn: psycopg.Connection[Any], jobs: Sequence[Job],
              rows: list[tuple[Any, ...]]) -> list[Job]:
        """Ids drawn first, then the rows by COPY and the wake-up, in one transaction: a pooled
        connection's own, or the application's (`_enqueue_outside` has begun it)."""
        own = conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE
        with conn.transaction() if own else contextlib.nullcontext():
            drawn = sorted(_one(conn.execute(self.q["reserve_ids"], (len(jobs),)))[0])
            with conn.cursor().copy(self.q["copy_jobs"]) as copy:
                for new_id, row in zip(drawn, rows, strict=True):
                    copy.write_row((new_id, *row))
            conn.execute(self.q["notify"], (self.channel,))
        for job, new_id in zip(jobs, drawn, strict=True):
            job.id = str(new_id)
        return list(jobs)

    def _insert_unique(self, cur: psycopg.Cursor[Any], jobs: Sequence[Job],
                       rows: list[tuple[Any, ...]]) -> list[Job]:
        """Jobs in order, a unique one matched against pending jobs under an advisory lock on its
        key (held to the end of the transaction), so two callers never both insert it."""
        keys = sorted({self._lock_key(j.unique_key) for j in jobs if j.unique and j.unique_key})
        cur.execute(self.q["lock_keys"], (keys,))
        out: list[Job] = []
        for job, row in zip(jobs, rows, strict=True):
            match = self._find_pending(cur, job) if job.unique and job.unique_key else None
            if match is not None:
                out.append(match)
                continue
            job.id = str(_one(cur.execute(self.q["insert_job"], (*row, self.channel)))["id"])
            out.append(job)
        return out

    def _find_pending(self, cur: psycopg.Cursor[Any], job: Job) -> Job | None:
        while True:
            found = cur.execute(self.q["find_unique"], (job.unique_key,)).fetchone()
            if found is None:
                return None
            if job.unique != "reschedule":
                return to_job(found)
            moved = cur.execute(self.q["reschedule"], (job.scheduled_at, job.state.value,
                                                      found["id"])).fetchone()
            if moved is not None:
                return to_job(moved)
            # A worker claimed it in between: it is no longer pending, look again.

    # -- claim, finish, leases -------------------------------------------------------------

    def claim(self, queues: Sequence[str] | None, limit: int, worker: str, token: str,
              lease_until: datetime, now: datetime) -> list[Job]:
        """One statement: the `FOR UPDATE SKIP LOCKED` pick and the update to running, so two
        claimers never take one job and never wait for each other. Its commit does not wait for
        the disk: a claim a crash forgets leaves the job queued, to run again (see queries.sql)."""
        params = {"limit": limit, "now": now, "token": token, "worker": worker,
                  "lease_until": lease_until}
        if queues is not None:
            params["queues"] = list(queues)
        query = self.q["claim_all" if queues is None else "claim"]
        with self._cursor() as cur:
            jobs = [to_job(row) for row in cur.execute(query, params).fetchall()]
        jobs.sort(key=lambda j: (-j.priority, j.scheduled_at, int(j.id)))
        return jobs

    def apply(self, updates: Sequence[Update], now: datetime) -> list[bool]:
        """One statement for the batch (one transaction); each row only while the stored job is
        still in `expect_state` under `expect_token`, and never one that would send a running job
        asked to cancel back to run without that request."""
        if not updates:
            return []
        keys = [bigint_or(u.job.id, -1) for u in updates]
        if len(set(keys)) != len(keys):
            # The same job twice: each write must see the one before it, so one at a time.
            with self._tx() as cur:
                return [self._apply(cur, [u])[0] for u in updates]
        with self._cursor() as cur:
            return self._apply(cur, updates)

    def _apply(self, cur: psycopg.Cursor[Any], updates: Sequence[Update]) -> list[bool]:
        written = {row["id"] for row in cur.execute(self.q["apply"], _batch(updates)).fetchall()}
        return [bigint_or(u.job.id, -1) in written for u in updates]

    def apply_and_claim(self, updates: Sequence[Update], now: datetime,
                        queues: Sequence[str] | None, limit: int, worker: str, token: str,
                        lease_until: datetime) -> tuple[list[bool], list[Job]]:
        """`apply(updates)` then `claim(...)` in one statement (one transaction, one round trip,
        one durable commit), each guarded as when alone: a worker writes the jobs it finished and
        takes its next ones. An optional capability; the worker uses it when present."""
        keys = [bigint_or(u.job.id, -1) for u in updates]
        if not updates or limit <= 0 or len(set(keys)) != len(keys):
            applied = self.apply(updates, now)
            jobs = self.claim(queues, limit, worker, token, lease_until, now) if limit > 0 else []
            return applied, jobs
        params: dict[str, Any] = _batch(updates)
        params.update(queues=None if queues is None else list(queues), limit=limit, now=now,
                      token=token, claimer=worker, lease=lease_until)
        with self._cursor() as cur:
            rows = cur.execute(self.q["apply_and_claim"], params).fetchall()
        written = set(rows[0]["applied_ids"] or ())
        jobs = [to_job(row) for row in rows if row["id"] is not None]
        jobs.sort(key=lambda j: (-j.priority, j.scheduled_at, int(j.id)))
        return [key in written for key in keys], jobs

    def heartbeat(self, leases: Sequence[tuple[str, str]], lease_until: datetime,
                  now: datetime) -> list[str]:
        """One statement: extends each lease still held under its token; returns the rest."""
        if not leases:
            return []
        order = sorted(leases, key=lambda lease: bigint_or(lease[0], -1))
        params = {"lease_until": lease_until, "ids": [bigint_or(i, -1) for i, _ in order],
                  "tokens": [t for _, t in order]}
        with self._cursor() as cur:
            kept = {row["id"] for row in cur.execute(self.q["heartbeat"], params).fetchall()}
        return [job_id for job_id, _ in leases if bigint_or(job_id, -1) not in kept]

    def set_progress(self, job_id: str, token: str, progress: float, message: str | None,
                     now: datetime) -> bool:
        """Applies only while the job runs under `token`."""
        with self._cursor() as cur:
            cur.execute(self.q["set_progress"], (progress, message, bigint_or(job_id, -1), token))
            return cur.rowcount == 1

    def append_logs(self, records: Sequence[NewLog]) -> None:
        """One statement; lines of jobs deleted meanwhile are dropped."""
        if not records:
            return
        params = {"job_id": [bigint_or(r.job_id, -1) for r in records],
                  "attempt": [r.attempt for r in records], "at": [r.at for r in records],
                  "level": [r.level for r in records], "message": [r.message for r in records]}
        with self._cursor() as cur:
            cur.execute(self.q["insert_log"], params)

    def cancel_requests(self, job_ids: Sequence[str]) -> dict[str, str | None]:
        if not job_ids:
            return {}
        rows = self._rows("cancel_requests", ([bigint_or(i, -1) for i in job_ids],))
        return {str(job_id): reason for job_id, reason in rows}

    # -- reading ---------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        key = bigint_or(job_id, None)
        if key is None:
            return None
        with self._cursor() as cur:
            row = cur.execute(self.q["get"], (key,)).fetchone()
        return None if row is None else to_job(row)

    def query(self, where: JobFilter, limit: int, after: str | None) -> tuple[list[Job], str | None]:
        params = {"states": [s.value for s in where.states] if where.states else None,
                  "queue": where.queue, "task": where.task, "owner": where.owner,
                  "parent": None if where.parent is None else bigint_or(where.parent, -1),
                  "after": None if after is None else bigint_or(after, 0), "limit": limit + 1}
        with self._cursor() as cur:
            jobs = [to_job(row) for row in cur.execute(self.q["query"], params).fetchall()]
        if len(jobs) > limit:
            return jobs[:limit], jobs[limit - 1].id
        return jobs, None

    def logs(self, job_id: str, limit: int | None) -> list[LogRecord]:
        key = bigint_or(job_id, -1)
        rows = self._rows("logs", (key,)) if limit is None else self._rows("logs_tail", (key, limit))
        return [LogRecord(at=at.astimezone(UTC), level=level, message=message, attempt=attempt,
                          job_id=str(jid)) for jid, attempt, at, level, message in rows]

    def stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for queue, state, count in self._rows("stats"):
            out.setdefault(queue, {})[state] = count
        return out

    def next_due(self) -> datetime | None:
        due = self._rows("next_due")[0][0]
        return None if due is None else due.astimezone(UTC)

    def expired(self, now: datetime, limit: int) -> list[Job]:
        with self._cursor() as cur:
            return [to_job(row) for row in cur.execute(self.q["expired"], (now, limit)).fetchall()]

    # -- deleting and maintenance ----------------------------------------------------------

    def delete(self, job_id: str) -> bool:
        """Deletes the job (and its logs) only if it is not running."""
        key = bigint_or(job_id, None)
        if key is None:
            return False
        with self._cursor() as cur:
            cur.execute(self.q["delete_job"], (key,))
            return cur.rowcount == 1

    def delete_where(self, states: Sequence[JobState], task: str | None, args: str | None,
                     kwargs: str | None, queue: str | None, count: int | None) -> int:
        """One statement; the matches are locked first, so a job claimed meanwhile is kept."""
        params = {"states": [s.value for s in states], "task": task, "args": args,
                  "kwargs": kwargs, "queue": queue, "count": count}
        with self._cursor() as cur:
            cur.execute(self.q["delete_where"], params)
            return cur.rowcount

    def promote_due(self, now: datetime, limit: int) -> int:
        """One statement. Promoters take turns (an advisory lock), so once this returns every job
        that was due is queued, by this call or the one before; a row an application's open
        transaction holds is skipped, never waited for."""
        with self._cursor() as cur:
            cur.execute(self.q["promote_due"], {"now": now, "limit": limit,
                                                "turn": self._lock_key("promote")})
            return cur.rowcount

    def prune(self, before: datetime, limit: int) -> int:
        with self._cursor() as cur:
            cur.execute(self.q["prune"], {"before": before, "limit": limit})
            return cur.rowcount

    # -- queues and periodic tasks ---------------------------------------------------------

    def set_paused(self, queue: str, paused: bool) -> None:
        with self._cursor() as cur:
            cur.execute(self.q["set_paused"], (queue, paused))

    def paused(self) -> set[str]:
        return {row[0] for row in self._rows("paused")}

    def periodic_states(self) -> dict[str, PeriodicState]:
        return {name: PeriodicState(enabled, None if slot is None else slot.astimezone(UTC))
                for name, enabled, slot in self._rows("periodic_states")}

    def periodic_register(self, name: str, slot: datetime) -> None:
        with self._cursor() as cur:
            cur.execute(self.q["periodic_register"], (name, slot))

    def periodic_set(self, name: str, enabled: bool, slot: datetime) -> None:
        with self._cursor() as cur:
            if enabled:
                cur.execute(self.q["periodic_enable"], {"name": name, "slot": slot})
            else:
                cur.execute(self.q["periodic_disable"], (name, slot))

    def periodic_fire(self, name: str, slot: datetime, job: Job, now: datetime) -> Job | None:
        """One statement: the compare-and-set on the last slot and the insert of `job`."""
        params = dict(zip(INSERT_COLUMNS, insert_params(job), strict=True))
        params.update(name=name, slot=slot, channel=self.channel)
        with self._cursor() as cur:
            row = cur.execute(self.q["periodic_fire"], params).fetchone()
        if row is None:
            return None
        job.id = str(row["id"])
        return job

    # -- wake-ups --------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake waiting workers: those of this process at once, the others through NOTIFY.
        Best effort: polling is the fallback, so a store that is down is not an error here."""
        with self._wake:
            self._wakes += 1
            self._wake.notify_all()
        try:
            with self._conn() as conn:
                conn.execute(self.q["notify"], (self.channel,))
        except BackendUnavailable as exc:
            log.debug("wake-up not sent: %s", exc)

    def wait_for_work(self, timeout: float) -> None:
        """Block until a NOTIFY on this installation's channel (or a `notify` in this process), or
        `timeout` seconds. One thread listens on the one dedicated connection, opened on first
        use; other threads of this process wait for it to pass the wake-up on."""
        deadline = time.monotonic() + timeout
        with self._wake:
            seen = self._wakes
        while not self._listen_lock.acquire(blocking=False):
            # Another thread listens; take over if it stops listening before a wake-up.
            left = deadline - time.monotonic()
            with self._wake:
                if self._wake.wait_for(lambda: self._wakes != seen, min(left, 0.05)) or left <= 0:
                    return
        try:
            woken = self._listen(max(0.0, deadline - time.monotonic()), seen)
        finally:
            self._listen_lock.release()
        if woken:
            with self._wake:
                self._wakes += 1
                self._wake.notify_all()

    def _listen(self, timeout: float, seen: int) -> bool:
        with self._driver_errors():
            try:
                conn = self._listening_connection()
                if self._wakes != seen:
                    return False
                woken = any(True for _ in conn.notifies(timeout=timeout, stop_after=1))
                if woken:  # wake-ups sent before this one are answered by the same claim
                    for _ in conn.notifies(timeout=0):
                        pass
                return woken
            except psycopg.Error:
                self._drop_listener()
                raise

    def _listening_connection(self) -> psycopg.Connection[Any]:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():  # another thread of this child may have done it
                    self._drop_inherited()
        if self._listener is not None and not self._listener.closed:
            return self._listener
        if not self._ready:
            self._prepare()
        conn = psycopg.connect(self.conninfo, autocommit=True)
        try:
            conn.execute(self.q["listen"])
        except BaseException:
            conn.close()
            raise
        self._listener = conn
        return conn

    def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                listener.close()


# -- batches and connections ---------------------------------------------------------------

def _batch(updates: Sequence[Update]) -> dict[str, list[Any]]:
    """The `apply` parameters of a batch: one array per column. Rows go in id order, as heartbeats
    take them, so two batches that wait for each other's rows never deadlock."""
    params: dict[str, list[Any]] = {name: [] for name in APPLY_COLUMNS}
    for update in sorted(updates, key=lambda u: bigint_or(u.job.id, -1)):
        for name, value in zip(APPLY_COLUMNS, apply_params(update), strict=True):
            params[name].append(value)
    return params


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection: times in UTC, commits durable (whatever the server's default).

    And no sort where an index gives the order: a queue's statistics are nearly always stale
    (10,000 jobs enqueued a second ago, analyzed when there were 10), and on them the planner
    sorts every queued job to claim 8, where walking the claim index stops after 8. The
    connections run only taskmill's queries, each written for the index that serves it."""
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute("SET synchronous_commit TO on")
    conn.execute("SET enable_sort TO off")


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    """The first row of a statement that always returns one."""
    row = cursor.fetchone()
    if row is None:
        raise psycopg.ProgrammingError("the statement returned no row")
    return row


def _idle(conn: psycopg.Connection[Any]) -> bool:
    """No transaction left open on it (the pool rolls back or discards such a connection)."""
    return conn.info.transaction_status == pq.TransactionStatus.IDLE


def _alive(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle pooled connection still works, without a round trip: a healthy idle
    connection has nothing to read; one the server ended has its goodbye (FATAL) and end of file.
    Anything else unasked for is rare enough that a fresh connection is the cheaper answer."""
    if conn.closed or conn.broken or conn.info.transaction_status in _TERMINATED:
        return False
    try:
        if hasattr(select, "poll"):  # no limit on descriptor numbers, unlike select()
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable
