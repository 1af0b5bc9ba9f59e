"""Redis: jobs as hashes, indexes as sorted sets, every state change one Lua script.

`redis://host:port/db?prefix=NAME` (default prefix "taskmill"). Every key of an installation
starts with "{NAME}:", one Redis Cluster hash tag. The key layout and what each persistence
setting keeps are in docs/redis.md. Scripts live in `lua/`, each prefixed with `lua/common.lua`,
and are called with EVALSHA (loaded with SCRIPT LOAD the first time Redis says NOSCRIPT).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.retry import Retry

from ..errors import BackendUnavailable, ConfigError
from ..job import Job, JobError, JobState, LogRecord, Update
from ..payload import encode_unchecked, loads
from .base import MUTABLE_FIELDS, Backend, JobFilter, NewLog, PeriodicState

# The fields a new job is stored with, in the order `enqueue` sends them. "data" holds, as one
# JSON array only Python reads, what never changes and no index needs (DATA_FIELDS, trailing
# nulls left out, so that it mostly stays under Redis's 64-byte listpack limit). The other mutable
# fields start at their defaults and are written by `apply`, each its own field of the hash.
NEW_FIELDS: tuple[str, ...] = (
    "task", "queue", "state", "priority", "scheduled_at", "max_attempts", "unique_key", "owner",
    "parent", "args", "kwargs", "data",
)
DATA_FIELDS: tuple[str, ...] = (
    "created_at", "retry", "max_iterations", "timeout", "title", "result_url", "return_url")
_TIMES = frozenset({"created_at", "scheduled_at", "started_at", "finished_at", "lease_until"})
_JSON = frozenset({"args", "kwargs", "retry", "result", "state_data"})
_INTS = frozenset({"priority", "attempts", "max_attempts", "iterations", "max_iterations"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
SCAN_BUDGET = 1000  # ids one query/delete script looks at before handing back to Python
NOTIFY_AFTER_WRITE = 0.05  # seconds: a notify this soon after a write that published sends nothing
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class _Script:
    source: str
    sha: str


def _lua_list(names: Sequence[str]) -> str:
    return ", ".join(json.dumps(name) for name in names)


def _load_scripts() -> dict[str, _Script]:
    """Each script of lua/ as sent to Redis: common.lua, then the lib_*.lua files it names in
    `--! uses NAME` lines, then its own text."""
    folder = resources.files(__package__).joinpath("lua")
    common = (folder.joinpath("common.lua").read_text("utf-8")
              .replace("--[[NEW_FIELDS]]", _lua_list(NEW_FIELDS))
              .replace("--[[MUTABLE_FIELDS]]", _lua_list(MUTABLE_FIELDS)))
    scripts = {}
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".lua") and name != "common.lua" and not name.startswith("lib_"):
            text = entry.read_text("utf-8")
            libs = [folder.joinpath(line.split()[-1]).read_text("utf-8")
                    for line in text.splitlines() if line.startswith("--! uses ")]
            source = "\n".join([common, *libs, text])
            scripts[name[:-4]] = _Script(source, hashlib.sha1(source.encode()).hexdigest())
    return scripts


SCRIPTS = _load_scripts()


def _us(value: datetime) -> str:
    return str((value - _EPOCH) // _MICRO)


def _dt(value: str | None) -> datetime | None:
    return None if value is None else _EPOCH + int(value) * _MICRO


def _encode(name: str, value: Any) -> str | None:
    """A field's value as stored in the job's hash (None: the field is left out)."""
    if value is None:
        return None
    if name in _TIMES:
        return _us(value)
    if name in _JSON:
        return encode_unchecked(value)
    if name == "error":
        return encode_unchecked(value.to_json())
    if name == "cancel_requested":
        return "1" if value else "0"
    if name in ("progress", "timeout"):
        return repr(float(value))
    if name in _INTS:
        return str(int(value))
    return str(value.value if isinstance(value, JobState) else value)


def _opt(value: str | None) -> str:
    """A value that may be none, as the scripts read it: "" for none, else "=" + value."""
    return "" if value is None else "=" + value


def _new_values(job: Job) -> list[str]:
    """A new job's values, in the order of NEW_FIELDS."""
    data = [(job.created_at - _EPOCH) // _MICRO, job.retry, job.max_iterations, job.timeout,
            job.title, job.result_url, job.return_url]
    while data[-1] is None:
        data.pop()
    return [job.task, job.queue, JobState(job.state).value, str(int(job.priority)),
            _us(job.scheduled_at), str(int(job.max_attempts)), _opt(job.unique_key),
            _opt(job.owner), _opt(job.parent), encode_unchecked(job.args) or "null",
            encode_unchecked(job.kwargs) or "null", _json(data)]


def _update_args(updates: Sequence[Update]) -> list[str]:
    """The updates as the apply scripts read them: id, expected state and token, mutable values."""
    args: list[str] = []
    for u in updates:
        args += [_id(u.job.id) or "0", u.expect_state.value, _opt(u.expect_token)]
        args += [_opt(_encode(name, getattr(u.job, name))) for name in MUTABLE_FIELDS]
    return args


def _to_job(flat: Sequence[str]) -> Job:
    h = dict(zip(flat[::2], flat[1::2], strict=True))
    data = dict(zip(DATA_FIELDS, json.loads(h["data"]), strict=False))
    timeout = data.get("timeout")
    return Job(
        id=h["id"], task=h["task"], queue=h["queue"], state=JobState(h["state"]),
        args=loads(h["args"]), kwargs=loads(h["kwargs"]),
        created_at=_EPOCH + data["created_at"] * _MICRO,
        scheduled_at=_dt(h["scheduled_at"]),  # type: ignore[arg-type]
        priority=int(h["priority"]), attempts=int(h.get("attempts", 0)),
        max_attempts=int(h["max_attempts"]), retry=data["retry"],
        progress=float(h.get("progress", 0.0)), progress_message=h.get("progress_message"),
        result=loads(h.get("result")), error=JobError.from_json(loads(h.get("error"))),
        owner=h.get("owner"), title=data.get("title"), parent=h.get("parent"),
        result_url=data.get("result_url"), return_url=data.get("return_url"),
        unique_key=h.get("unique_key"), started_at=_dt(h.get("started_at")),
        finished_at=_dt(h.get("finished_at")), iterations=int(h.get("iterations", 0)),
        max_iterations=int(data["max_iterations"]), state_data=loads(h.get("state_data")),
        timeout=None if timeout is None else float(timeout),
        cancel_requested=h.get("cancel_requested") == "1", cancel_reason=h.get("cancel_reason"),
        claim_token=h.get("claim_token"), worker=h.get("worker"),
        lease_until=_dt(h.get("lease_until")),
    )


def _id(value: str) -> str | None:
    """A job id in its stored form ("007" -> "7"), or None if it cannot be one."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return str(number) if number > 0 else None


class RedisBackend(Backend):
    """Jobs in Redis, under one key prefix. Thread-safe; one connection pool per process."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"not a redis URL: {url!r}")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        in_url = query.pop("prefix", None)
        prefix = str(options.pop("prefix", None) or in_url or "taskmill")
        if any(c in prefix for c in "{}*?[]\\") or not prefix.strip():
            raise ConfigError(f"a redis prefix is a name without {{}}*?[]\\, got {prefix!r}")
        unknown = set(query) - set(URL_QUERY_ARGUMENT_PARSERS)
        if unknown:
            raise ConfigError(f"unknown redis URL option(s): {', '.join(sorted(unknown))}")
        self.prefix = prefix
        self.key = "{" + prefix + "}:"  # KEYS[1] of every script; all keys start with it
        self._target = urlunsplit(parts._replace(query=urlencode(query)))
        host = parts.hostname or "localhost"
        self._where = urlunsplit(parts._replace(netloc=f"{host}:{parts.port or 6379}", query=""))
        self._options = {"socket_connect_timeout": 5.0, "socket_timeout": 30.0, **options}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None
        self._pubsub: Any = None
        self._pid = os.getpid()

    # -- connection, scripts, errors: the one place redis-py errors are translated -----------

    @property
    def client(self) -> redis.Redis:
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    # No silent retry: a write whose reply was lost must not run twice (an
                    # enqueue would store its jobs again). Callers back off and try again.
                    self._client = redis.Redis.from_url(
                        self._target, decode_responses=True, retry=Retry(NoBackoff(), 0),
                        **self._options)
                    self._pid = os.getpid()
        return self._client

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise BackendUnavailable(f"redis {self._where}: {exc}") from exc

    def _run(self, name: str, *args: Any) -> Any:
        """Call script `name` with EVALSHA, loading it first if Redis does not know it (a new or
        restarted server)."""
        script = SCRIPTS[name]
        self._local.woke = 0.0
        client = self.client
        with self._errors():
            try:
                return client.evalsha(script.sha, 1, self.key, *args)
            except redis.exceptions.NoScriptError:
                client.script_load(script.source)
                return client.evalsha(script.sha, 1, self.key, *args)

    def _do(self, command: str, *args: Any) -> Any:
        """One plain Redis command on a key of this installation (reads, and single-key writes)."""
        self._local.woke = 0.0
        with self._errors():
            return self.client.execute_command(command, *args)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        with self._lock:
            if self._pubsub is not None:
                with contextlib.suppress(redis.RedisError, OSError):
                    self._pubsub.close()
            if self._client is not None and self._pid == os.getpid():
                with contextlib.suppress(redis.RedisError, OSError):
                    self._client.close()
            self._client = self._pubsub = None

    def after_fork(self) -> None:
        # The parent's sockets stay the parent's: drop them without closing (a close would
        # shut them down for the parent too); the child connects on first use.
        self._client = self._pubsub = None
        self._lock = threading.Lock()
        self._local = threading.local()

    # -- the contract ----------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[Job], now: datetime) -> list[Job]:
        if not jobs:
            return []
        args: list[Any] = [len(jobs), "0"]
        for job in jobs:  # all encoded (or refused) before anything is sent
            if job.unique not in (None, "return", "reschedule"):
                raise ConfigError(f"unique must be None, 'return' or 'reschedule', got {job.unique!r}")
            if job.unique and job.unique_key:
                args[1] = "1"
            args.append(job.unique if job.unique and job.unique_key else "")
            args += _new_values(job)
        reply = self._run("enqueue", *args)
        self._local.woke = time.monotonic()
        out: list[Job] = []
        for job, got in zip(jobs, reply, strict=True):
            if isinstance(got, list):
                out.append(_to_job(got))
            else:
                job.id = str(got)
                out.append(job)
        return out

    def claim(self, queues: Sequence[str] | None, limit: int, worker: str, token: str,
              lease_until: datetime, now: datetime) -> list[Job]:
        if limit <= 0 or (queues is not None and not queues):
            return []
        names = [] if queues is None else list(dict.fromkeys(queues))
        reply = self._run("claim", _us(now), limit, worker, token, _us(lease_until), *names)
        return [_to_job(flat) for flat in reply]

    def apply(self, updates: Sequence[Update], now: datetime) -> list[bool]:
        if not updates:
            return []
        reply = self._run("apply", *_update_args(updates))
        self._local.woke = time.monotonic() if reply[-1] else 0.0
        return [bool(ok) for ok in reply[:-1]]

    def apply_and_claim(self, updates: Sequence[Update], now: datetime,
                        queues: Sequence[str] | None, limit: int, worker: str, token: str,
                        lease_until: datetime) -> tuple[list[bool], list[Job]]:
        """`apply(updates)` then `claim(...)` in one script, each guarded as when alone: a worker
        writes the jobs it finished and takes its next ones in one round trip. Atomic as a whole."""
        names = [] if queues is None else list(dict.fromkeys(queues))
        if queues is not None and not names:
            limit = 0
        head: list[Any] = [_us(now), max(0, limit), worker, token, _us(lease_until),
                           -1 if queues is None else len(names), *names]
        applied, woke, jobs = self._run("apply_and_claim", *head, *_update_args(updates))
        self._local.woke = time.monotonic() if woke else 0.0
        return [bool(ok) for ok in applied], [_to_job(flat) for flat in jobs]

    def heartbeat(self, leases: Sequence[tuple[str, str]], lease_until: datetime,
                  now: datetime) -> list[str]:
        if not leases:
            return []
        args = [part for job_id, token in leases for part in (_id(job_id) or "0", token)]
        lost = set(self._run("heartbeat", _us(lease_until), *args))
        return [job_id for job_id, _ in leases if (_id(job_id) or "0") in lost]

    def set_progress(self, job_id: str, token: str, progress: float, message: str | None,
                     now: datetime) -> bool:
        key = _id(job_id)
        if key is None:
            return False
        text = "" if message is None else "=" + message
        return bool(self._run("set_progress", key, token, repr(float(progress)), text))

    def append_logs(self, records: Sequence[NewLog]) -> None:
        args: list[str] = []
        for r in records:
            key = _id(r.job_id)
            if key is not None:
                args += [key, _json([_us(r.at), r.level, r.message, r.attempt])]
        if args:
            self._run("append_logs", *args)

    def cancel_requests(self, job_ids: Sequence[str]) -> dict[str, str | None]:
        keys = [(job_id, key) for job_id in job_ids if (key := _id(job_id)) is not None]
        if not keys:
            return {}
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for _, key in keys:
                pipe.hmget(f"{self.key}job:{key}", "state", "cancel_requested", "cancel_reason")
            rows = pipe.execute()
        return {job_id: reason for (job_id, _), (state, requested, reason) in zip(keys, rows, strict=True)
                if state == "running" and requested == "1"}

    def get(self, job_id: str) -> Job | None:
        key = _id(job_id)
        if key is None:
            return None
        flat = self._do("HGETALL", f"{self.key}job:{key}")
        if isinstance(flat, dict):  # RESP3 answers a map
            flat = [x for pair in flat.items() for x in pair]
        return _to_job(flat) if flat else None

    def query(self, where: JobFilter, limit: int, after: str | None) -> tuple[list[Job], str | None]:
        cursor = ""
        if after is not None:
            start = _id(after)
            if start is None:
                return [], None
            cursor = start
        spec = {"states": [s.value for s in where.states], "queue": where.queue,
                "task": where.task, "owner": where.owner, "parent": where.parent}
        text, found = _json(spec), list[Job]()
        while len(found) <= limit:
            reply = self._run("query", text, cursor, SCAN_BUDGET, limit + 1 - len(found))
            cursor, more = reply[0], reply[1]
            found += [_to_job(flat) for flat in reply[2:]]
            if not more:
                break
        if len(found) > limit:
            return found[:limit], found[limit - 1].id
        return found, None

    def logs(self, job_id: str, limit: int | None) -> list[LogRecord]:
        key = _id(job_id)
        if key is None or limit == 0:
            return []
        start = 0 if limit is None else -limit
        lines = self._do("LRANGE", f"{self.key}log:{key}", start, -1)
        out = []
        for line in lines:
            at, level, message, attempt = json.loads(line)
            out.append(LogRecord(at=_dt(at) or _EPOCH, level=level, message=message,
                                 attempt=attempt, job_id=key))
        return out

    def delete(self, job_id: str) -> bool:
        key = _id(job_id)
        return key is not None and bool(self._run("delete", key))

    def delete_where(self, states: Sequence[JobState], task: str | None, args: str | None,
                     kwargs: str | None, queue: str | None, count: int | None) -> int:
        states = [s for s in states if s is not JobState.RUNNING]
        if not states or count == 0:
            return 0
        spec = _json({"states": [s.value for s in states], "task": task, "queue": queue,
                      "args": args, "kwargs": kwargs})
        cursor, deleted, more = "", 0, True
        while more and (count is None or deleted < count):
            left = -1 if count is None else count - deleted
            n, cursor, more = self._run("delete_where", spec, cursor, SCAN_BUDGET, left)
            deleted += n
        return deleted

    def stats(self) -> dict[str, dict[str, int]]:
        raw = self._do("HGETALL", f"{self.key}stats")
        pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
        out: dict[str, dict[str, int]] = {}
        for field, value in pairs:
            state, _, queue = field.partition(":")
            if int(value) > 0:
                out.setdefault(queue, {})[state] = int(value)
        return out

    def _in_slices(self, script: str, at: datetime, limit: int) -> int:
        """Run `script` on up to `limit` jobs in scripts of at most 500: none blocks Redis long."""
        done = 0
        while done < limit:
            want = min(500, limit - done)
            n = int(self._run(script, _us(at), want))
            done += n
            if n < want:
                break
        return done

    def promote_due(self, now: datetime, limit: int) -> int:
        promoted = self._in_slices("promote_due", now, limit)
        self._local.woke = time.monotonic() if promoted else 0.0
        return promoted

    def next_due(self) -> datetime | None:
        first = self._do("ZRANGE", f"{self.key}scheduled", 0, 0, "WITHSCORES")
        if not first:
            return None
        score = first[0][1] if isinstance(first[0], list | tuple) else first[1]
        return _EPOCH + int(float(score)) * _MICRO

    def expired(self, now: datetime, limit: int) -> list[Job]:
        return [_to_job(flat) for flat in self._run("expired", _us(now), limit)]

    def prune(self, before: datetime, limit: int) -> int:
        return self._in_slices("prune", before, limit)

    def set_paused(self, queue: str, paused: bool) -> None:
        self._do("SADD" if paused else "SREM", f"{self.key}paused", queue)

    def paused(self) -> set[str]:
        return set(self._do("SMEMBERS", f"{self.key}paused"))

    def periodic_states(self) -> dict[str, PeriodicState]:
        raw = self._do("HGETALL", f"{self.key}periodic")
        pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
        return {name: PeriodicState(value[0] == "1", _dt(value[2:] or None))
                for name, value in pairs}

    def periodic_register(self, name: str, slot: datetime) -> None:
        self._do("HSETNX", f"{self.key}periodic", name, "1:" + _us(slot))

    def periodic_set(self, name: str, enabled: bool, slot: datetime) -> None:
        self._run("periodic_set", name, "1" if enabled else "0", _us(slot))

    def periodic_fire(self, name: str, slot: datetime, job: Job, now: datetime) -> Job | None:
        got = self._run("periodic_fire", name, _us(slot), *_new_values(job))
        self._local.woke = 0.0 if got is None else time.monotonic()
        if got is None:
            return None
        job.id = str(got)
        return job

    # -- wake-ups: pub/sub on "{prefix}:wake"; the worker's poll is the fallback -------------

    def notify(self) -> None:
        # The facade calls notify right after a write; when that write's script published
        # already (this thread, a moment ago), a second message would only wake workers twice.
        woke = getattr(self._local, "woke", 0.0)
        self._local.woke = 0.0
        if woke and time.monotonic() - woke < NOTIFY_AFTER_WRITE:
            return
        self._do("PUBLISH", f"{self.key}wake", "1")

    def wait_for_work(self, timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            with self._errors():
                if self._pubsub is None:
                    pubsub = self.client.pubsub(  # type: ignore[no-untyped-call]
                        ignore_subscribe_messages=True)
                    pubsub.subscribe(f"{self.key}wake")
                    self._pubsub = pubsub
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    if self._pubsub.get_message(timeout=left) is not None:
                        while self._pubsub.get_message(timeout=0) is not None:
                            pass  # one wake-up is enough for a burst of them
                        return
        except BackendUnavailable:
            # The next wait subscribes afresh (after a Redis restart, say).
            pubsub, self._pubsub = self._pubsub, None
            if pubsub is not None:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()
            raise

    # -- operations -------------------------------------------------------------------------

    def durability_warning(self) -> str | None:
        """What a Redis restart would lose, in a sentence for the worker to log at start; None
        when the append-only file is synced every second or on every write."""
        try:
            with self._errors():
                raw = self.client.config_get("appendonly", "appendfsync", "save", "maxmemory-policy")
                config: dict[str, str] = {str(k): str(v) for k, v in dict(raw).items()}
        except BackendUnavailable as exc:
            if "CONFIG" not in str(exc).upper() and "unknown command" not in str(exc).lower():
                raise
            info = self._do("INFO", "persistence")
            if str(info.get("aof_enabled", "0")) == "1":
                return None
            return (f"Redis at {self._where} does not say how it persists (CONFIG is disabled) "
                    f"and its append-only file is off: a restart may lose jobs")
        where, problems = f"Redis at {self._where}", []
        aof, fsync = config.get("appendonly") == "yes", config.get("appendfsync", "")
        save = config.get("save", "").strip()
        if not aof and not save:
            problems.append(f"{where} keeps nothing on disk (appendonly no, no save points): a "
                            f"restart loses every job; set appendonly yes")
        elif not aof:
            problems.append(f"{where} only takes RDB snapshots (save {save}): a restart loses "
                            f"the jobs of the writes since the last one; set appendonly yes")
        elif fsync == "no":
            problems.append(f"{where} leaves syncing its append-only file to the OS (appendfsync "
                            f"no): a power loss may lose the last ~30s of jobs")
        policy = config.get("maxmemory-policy", "noeviction")
        if policy.startswith("allkeys"):
            problems.append(f"{where} evicts keys when full (maxmemory-policy {policy}): jobs "
                            f"may vanish; use noeviction")
        return "; ".join(problems) or None
