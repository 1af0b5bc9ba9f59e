"""The embedded default: one SQLite file in WAL mode, every write one `BEGIN IMMEDIATE`."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from ..errors import BackendUnavailable, ConfigError
from ..job import Job, JobError, JobState, LogRecord, Update
from ..payload import SharedTexts, encode_unchecked, loads
from .base import Backend, JobFilter, NewLog, PeriodicState
from .sql import queries
from .wake import SocketWaker

SCHEMA_VERSION = 3
PAGE_SIZE = 2048  # bytes, for new files: SQLite's 4096 made one-insert commits ~25% slower here
Q = queries("sqlite")


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


_dumps = encode_unchecked
_policy_text = SharedTexts(encode_unchecked)


class SQLiteBackend(Backend):
    """Jobs in a SQLite file. Writes are serialised by SQLite; in one process by a lock too."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        if parts.scheme != "sqlite":
            raise ConfigError(f"not a sqlite URL: {url!r}")
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if parts.netloc:
            raise ConfigError(f"a sqlite URL has no host: use sqlite:///relative.db or "
                              f"sqlite:////absolute/path.db, not {url!r}")
        if not path:
            raise ConfigError(f"the sqlite URL {url!r} names no file")
        self.path = os.path.abspath(path)
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        sync = options.pop("synchronous", "full").lower()
        if sync not in ("full", "normal"):
            raise ConfigError(f"synchronous must be 'full' or 'normal', got {sync!r}")
        self.synchronous = sync
        try:
            self.busy_timeout = int(options.pop("busy_timeout", "30000"))
        except ValueError as exc:
            raise ConfigError("busy_timeout must be a whole number of milliseconds") from exc
        if options:
            raise ConfigError(f"unknown sqlite URL option(s): {', '.join(sorted(options))}")
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._waker = SocketWaker(self.path)
        with self._tx() as conn:
            self._migrate(conn)

    # -- connection and transactions -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise BackendUnavailable(f"cannot open {self.path}: folder {directory} does not exist")
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=self.busy_timeout / 1000)
            # A new file only (an existing one keeps its own): small pages, since each commit
            # writes whole pages to the WAL and a job's row and index entries are small.
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self._use_wal(conn)
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute(f"PRAGMA busy_timeout={self.busy_timeout}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """WAL mode, kept in the file. Switching to it can answer "locked" at once, without
        waiting, while other processes open the same new file: try again until the busy timeout."""
        deadline = time.monotonic() + self.busy_timeout / 1000
        while conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _tx(self, write: bool = True) -> _Tx:
        """One transaction (`BEGIN IMMEDIATE` for writes); driver errors become BackendUnavailable."""
        return _Tx(self, "BEGIN IMMEDIATE" if write else "BEGIN")

    def _unavailable(self, exc: sqlite3.Error) -> BackendUnavailable:
        return BackendUnavailable(f"sqlite {self.path}: {exc}")

    def _read(self, sql: str, params: Any = ()) -> list[Any]:
        with self._lock:
            try:
                return self._connect().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise BackendUnavailable(f"sqlite {self.path}: {exc}") from exc

    def _migrate(self, conn: sqlite3.Connection) -> None:
        has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'taskmill_meta'").fetchone()
        version = int(conn.execute(Q["schema_version"]).fetchone()[0]) if has_meta else 0
        if version > SCHEMA_VERSION:
            raise ConfigError(f"{self.path} was written by a newer taskmill (schema {version}, "
                              f"this one knows {SCHEMA_VERSION})")
        if version < SCHEMA_VERSION:
            for statement in statements(Q["schema"]):
                conn.execute(statement)
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
                conn.execute(Q["seed_id_floor"])
            conn.execute(Q["set_schema_version"], (str(SCHEMA_VERSION),))

    def durability_warning(self) -> str | None:
        if self.synchronous == "normal":
            return (f"{self.path} runs with synchronous=normal: jobs acknowledged just before a "
                    f"power loss or OS crash may be lost (a process crash loses nothing)")
        return None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
            self._waker.close()

    def after_fork(self) -> None:
        self._conn = None
        self._lock = threading.RLock()
        self._waker = SocketWaker(self.path)

    # -- rows ------------------------------------------------------------------------------

    @staticmethod
    def _jobs(cursor: sqlite3.Cursor) -> list[Job]:
        names = [d[0] for d in cursor.description]
        return [_to_job(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    # -- the contract ----------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[Job], now: datetime) -> list[Job]:
        if not any(job.unique and job.unique_key for job in jobs):
            # The common case: plain inserts, their rows built before taking the write lock.
            rows = [_insert_row(job) for job in jobs]
            if len(rows) == 1:
                with self._tx() as conn:
                    jobs[0].id = str(conn.execute(Q["insert_job"], rows[0]).lastrowid)
                return list(jobs)
            with self._tx() as conn:
                first = self._insert_many(conn, rows)
            for offset, job in enumerate(jobs):
                job.id = str(first + offset)
            return list(jobs)
        out: list[Job] = []
        with self._tx() as conn:
            for job in jobs:
                if job.unique and job.unique_key:
                    cur = conn.execute(Q["find_unique"], (job.unique_key,))
                    found = self._jobs(cur)
                    if found:
                        match = found[0]
                        if job.unique == "reschedule":
                            cur = conn.execute(Q["reschedule"], (
                                _ts(job.scheduled_at), job.state.value, int(match.id)))
                            match = self._jobs(cur)[0]
                        out.append(match)
                        continue
                cur = conn.execute(Q["insert_job"], _insert_row(job))
                job.id = str(cur.lastrowid)
                out.append(job)
        return out

    @staticmethod
    def _insert_many(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int:
        """Insert `rows` with one `executemany` and return the first one's id: insert_job gives
        each row one more than the largest id so far, so in the write transaction they follow
        each other. (Past the largest integer SQLite refuses the insert: an error, never a
        reused id.)"""
        conn.executemany(Q["insert_job"], rows)
        last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
        return last - len(rows) + 1

    def claim(self, queues: Sequence[str] | None, limit: int, worker: str, token: str,
              lease_until: datetime, now: datetime) -> list[Job]:
        with self._tx() as conn:
            return self._claim_in(conn, queues, limit, worker, token, lease_until, now)

    def apply(self, updates: Sequence[Update], now: datetime) -> list[bool]:
        with self._tx() as conn:
            return self._apply_in(conn, updates)

    def apply_and_claim(self, updates: Sequence[Update], now: datetime,
                        queues: Sequence[str] | None, limit: int, worker: str, token: str,
                        lease_until: datetime) -> tuple[list[bool], list[Job]]:
        """`apply(updates)` then `claim(...)` in one transaction (each guarded as alone): a worker
        hands back the jobs it finished and takes the next ones with one commit, one fsync at
        synchronous=FULL, instead of two. An optional capability: the worker uses it if present."""
        with self._tx() as conn:
            applied = self._apply_in(conn, updates)
            jobs = self._claim_in(conn, queues, limit, worker, token, lease_until, now) if limit else []
        return applied, jobs

    def _claim_in(self, conn: sqlite3.Connection, queues: Sequence[str] | None, limit: int,
                  worker: str, token: str, lease_until: datetime, now: datetime) -> list[Job]:
        params = {"now": _ts(now), "token": token, "worker": worker,
                  "lease_until": _ts(lease_until), "limit": limit,
                  "queues": None if queues is None else json.dumps(list(queues))}
        jobs = self._jobs(conn.execute(Q["claim"], params))
        jobs.sort(key=lambda j: (-j.priority, j.scheduled_at, int(j.id)))
        return jobs

    @staticmethod
    def _apply_in(conn: sqlite3.Connection, updates: Sequence[Update]) -> list[bool]:
        done: list[bool] = []
        for update in updates:
            j = update.job
            cur = conn.execute(Q["apply"], {
                "id": int(j.id), "expect_state": update.expect_state.value,
                "expect_token": update.expect_token, "state": j.state.value,
                "scheduled_at": _ts(j.scheduled_at), "attempts": j.attempts,
                "max_attempts": j.max_attempts, "progress": j.progress,
                "progress_message": j.progress_message, "result": _dumps(j.result),
                "error": _dumps(j.error.to_json()) if j.error else None,
                "started_at": _ts(j.started_at), "finished_at": _ts(j.finished_at),
                "iterations": j.iterations, "state_data": _dumps(j.state_data),
                "cancel_requested": int(j.cancel_requested), "cancel_reason": j.cancel_reason,
                "claim_token": j.claim_token, "worker": j.worker,
                "lease_until": _ts(j.lease_until)})
            done.append(cur.rowcount == 1)
        return done

    def heartbeat(self, leases: Sequence[tuple[str, str]], lease_until: datetime,
                  now: datetime) -> list[str]:
        lost: list[str] = []
        until = _ts(lease_until)
        with self._tx() as conn:
            for job_id, token in leases:
                if conn.execute(Q["heartbeat"], (until, int(job_id), token)).rowcount != 1:
                    lost.append(job_id)
        return lost

    def set_progress(self, job_id: str, token: str, progress: float, message: str | None,
                     now: datetime) -> bool:
        with self._tx() as conn:
            return bool(conn.execute(Q["set_progress"], (progress, message, int(job_id), token))
                        .rowcount == 1)

    def append_logs(self, records: Sequence[NewLog]) -> None:
        if not records:
            return
        with self._tx() as conn:
            # A line of a job deleted meanwhile has nowhere to go; it is dropped with its job.
            existing = {row[0] for row in conn.execute(
                "SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted({int(r.job_id) for r in records})),))}
            conn.executemany(Q["insert_log"], [
                (int(r.job_id), r.attempt, _ts(r.at), r.level, r.message)
                for r in records if int(r.job_id) in existing])

    def cancel_requests(self, job_ids: Sequence[str]) -> dict[str, str | None]:
        if not job_ids:
            return {}
        rows = self._read(Q["cancel_requests"], (json.dumps([int(i) for i in job_ids]),))
        return {str(row[0]): row[1] for row in rows}

    def get(self, job_id: str) -> Job | None:
        key = _int_or(job_id, -1)
        if key < 0:
            return None
        with self._lock:
            try:
                jobs = self._jobs(self._connect().execute(Q["get"], (key,)))
            except sqlite3.Error as exc:
                raise BackendUnavailable(f"sqlite {self.path}: {exc}") from exc
        return jobs[0] if jobs else None

    def query(self, where: JobFilter, limit: int, after: str | None) -> tuple[list[Job], str | None]:
        params = {
            "states": json.dumps([s.value for s in where.states]) if where.states else None,
            "queue": where.queue, "task": where.task, "owner": where.owner,
            "parent": None if where.parent is None else _int_or(where.parent, -1),
            "after": None if after is None else _int_or(after, 0), "limit": limit + 1,
        }
        with self._lock:
            try:
                jobs = self._jobs(self._connect().execute(Q["query"], params))
            except sqlite3.Error as exc:
                raise BackendUnavailable(f"sqlite {self.path}: {exc}") from exc
        if len(jobs) > limit:
            return jobs[:limit], jobs[limit - 1].id
        return jobs, None

    def logs(self, job_id: str, limit: int | None) -> list[LogRecord]:
        key = _int_or(job_id, -1)
        if limit is None:
            rows = self._read(Q["logs"], (key,))
        else:
            rows = [row[1:] for row in self._read(Q["logs_tail"], (key, limit))]
        return [LogRecord(at=_dt(at) or datetime.now(UTC), level=level, message=message,
                          attempt=attempt, job_id=str(jid)) for jid, attempt, at, level, message in rows]

    def delete(self, job_id: str) -> bool:
        key = _int_or(job_id, -1)
        with self._tx() as conn:
            return bool(conn.execute(Q["delete_job"], (key,)).rowcount == 1)

    def delete_where(self, states: Sequence[JobState], task: str | None, args: str | None,
                     kwargs: str | None, queue: str | None, count: int | None) -> int:
        params = {"states": json.dumps([s.value for s in states]), "task": task, "args": args,
                  "kwargs": kwargs, "queue": queue, "count": -1 if count is None else count}
        with self._tx() as conn:
            return int(conn.execute(Q["delete_where"], params).rowcount)

    def stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for queue, state, count in self._read(Q["stats"]):
            out.setdefault(queue, {})[state] = count
        return out

    def promote_due(self, now: datetime, limit: int) -> int:
        due = self._read(Q["next_due"])[0][0]
        if due is None or due > now.timestamp():
            return 0  # nothing due: no write transaction (and no fsync) at all
        with self._tx() as conn:
            return int(conn.execute(Q["promote_due"], (_ts(now), limit)).rowcount)

    def next_due(self) -> datetime | None:
        return _dt(self._read(Q["next_due"])[0][0])

    def expired(self, now: datetime, limit: int) -> list[Job]:
        with self._lock:
            try:
                return self._jobs(self._connect().execute(Q["expired"], (_ts(now), limit)))
            except sqlite3.Error as exc:
                raise BackendUnavailable(f"sqlite {self.path}: {exc}") from exc

    def prune(self, before: datetime, limit: int) -> int:
        with self._tx() as conn:
            return int(conn.execute(Q["prune"], (_ts(before), limit)).rowcount)

    def set_paused(self, queue: str, paused: bool) -> None:
        with self._tx() as conn:
            conn.execute(Q["set_paused"], (queue, int(paused)))

    def paused(self) -> set[str]:
        return {row[0] for row in self._read(Q["paused"])}

    def periodic_states(self) -> dict[str, PeriodicState]:
        return {name: PeriodicState(bool(enabled), _dt(slot))
                for name, enabled, slot in self._read(Q["periodic_states"])}

    def periodic_register(self, name: str, slot: datetime) -> None:
        with self._tx() as conn:
            conn.execute(Q["periodic_register"], (name, _ts(slot)))

    def periodic_set(self, name: str, enabled: bool, slot: datetime) -> None:
        with self._tx() as conn:
            if enabled:
                conn.execute(Q["periodic_enable"], {"name": name, "slot": _ts(slot)})
            else:
                conn.execute(Q["periodic_disable"], (name, _ts(slot)))

    def periodic_fire(self, name: str, slot: datetime, job: Job, now: datetime) -> Job | None:
        with self._tx() as conn:
            if conn.execute(Q["periodic_advance"], (_ts(slot), name, _ts(slot))).rowcount != 1:
                return None
            cur = conn.execute(Q["insert_job"], (
                job.task, job.queue, job.state.value, _dumps(job.args), _dumps(job.kwargs),
                job.priority, job.max_attempts, _dumps(job.retry), job.owner, job.title, None,
                None, None, job.unique_key, _ts(job.created_at), _ts(job.scheduled_at),
                job.max_iterations, job.timeout))
            job.id = str(cur.lastrowid)
        return job

    # -- wake-ups --------------------------------------------------------------------------

    def notify(self) -> None:
        self._waker.notify()

    def wait_for_work(self, timeout: float) -> None:
        self._waker.wait(timeout)


def statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, one at a time (a trigger's body holds semicolons)."""
    pending = ""
    pieces = script.split(";")
    for n, piece in enumerate(pieces, 1):
        pending += piece if n == len(pieces) else piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"incomplete SQL statement: {pending[:60]!r}")


def _insert_row(job: Job) -> tuple[Any, ...]:
    """The `insert_job` parameters of a new job."""
    retry_text = _policy_text(job.retry)
    return (job.task, job.queue, job.state.value, _dumps(job.args), _dumps(job.kwargs),
            job.priority, job.max_attempts, retry_text, job.owner, job.title,
            None if job.parent is None else int(job.parent), job.result_url, job.return_url,
            job.unique_key, _ts(job.created_at), _ts(job.scheduled_at), job.max_iterations,
            job.timeout)


class _Tx:
    """`with backend._tx() as conn:` one transaction under the backend's lock: COMMIT at the end,
    ROLLBACK if the body raises; driver errors become BackendUnavailable. A class rather than a
    generator context manager: it is on every write's path (enqueue, claim, complete)."""

    __slots__ = ("backend", "begin", "conn")

    def __init__(self, backend: SQLiteBackend, begin: str) -> None:
        self.backend = backend
        self.begin = begin

    def __enter__(self) -> sqlite3.Connection:
        backend = self.backend
        backend._lock.acquire()
        try:
            conn = backend._connect()
            conn.execute(self.begin)
        except sqlite3.Error as exc:
            backend._lock.release()
            raise backend._unavailable(exc) from exc
        except BaseException:
            backend._lock.release()
            raise
        self.conn = conn
        return conn

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> Literal[False]:
        backend, conn = self.backend, self.conn
        try:
            try:
                conn.execute("COMMIT" if exc is None else "ROLLBACK")
            except sqlite3.Error as error:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise backend._unavailable(error) from error
            if isinstance(exc, sqlite3.Error):
                raise backend._unavailable(exc) from exc
            return False
        finally:
            backend._lock.release()


def _int_or(value: str, default: int) -> int:
    """`value` as an id, or `default` if it is not a whole number SQLite can hold."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if -(2**63) <= number < 2**63 else default


def _to_job(row: dict[str, Any]) -> Job:
    return Job(
        id=str(row["id"]), task=row["task"], queue=row["queue"], state=JobState(row["state"]),
        args=loads(row["args"]), kwargs=loads(row["kwargs"]),
        created_at=_dt(row["created_at"]),  # type: ignore[arg-type]
        scheduled_at=_dt(row["scheduled_at"]),  # type: ignore[arg-type]
        priority=row["priority"], attempts=row["attempts"], max_attempts=row["max_attempts"],
        retry=loads(row["retry"]), progress=row["progress"],
        progress_message=row["progress_message"], result=loads(row["result"]),
        error=JobError.from_json(loads(row["error"])), owner=row["owner"], title=row["title"],
        parent=None if row["parent"] is None else str(row["parent"]),
        result_url=row["result_url"], return_url=row["return_url"], unique_key=row["unique_key"],
        started_at=_dt(row["started_at"]), finished_at=_dt(row["finished_at"]),
        iterations=row["iterations"], max_iterations=row["max_iterations"],
        state_data=loads(row["state_data"]), timeout=row["timeout"],
        cancel_requested=bool(row["cancel_requested"]), cancel_reason=row["cancel_reason"],
        claim_token=row["claim_token"], worker=row["worker"], lease_until=_dt(row["lease_until"]),
    )
