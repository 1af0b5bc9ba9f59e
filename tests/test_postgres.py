"""The PostgreSQL backend beyond the conformance suite: its schema and migrations, installations
side by side, enqueue inside an application's transaction, races between hosts, wake-ups, indexes,
fork. Real server only; each test has its own schema (the `pg_url` fixture)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from taskmill import Mill  # noqa: E402
from taskmill.backends.base import JobFilter  # noqa: E402
from taskmill.backends.postgres import COPY_FROM, SCHEMA_VERSION, PostgresBackend  # noqa: E402
from taskmill.errors import BackendUnavailable, ConfigError, TaskmillError  # noqa: E402
from taskmill.job import JobState  # noqa: E402
from taskmill.testing import FakeClock, drain  # noqa: E402
from taskmill.testing.conformance import in_threads  # noqa: E402

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def schema_of(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


def dsn_of(url: str) -> str:
    return url.split("?", 1)[0]


def noop(ctx: Any, *args: Any, **kwargs: Any) -> None:
    """Does nothing."""


@pytest.fixture
def mill(pg_url: str) -> Iterator[Mill]:
    mill = Mill(pg_url, clock=FakeClock(T0))
    mill.task(noop)
    yield mill
    mill.close()


@pytest.fixture
def backend(mill: Mill) -> PostgresBackend:
    backend = mill.backend
    assert isinstance(backend, PostgresBackend)
    return backend


# -- schema and installations ---------------------------------------------------------------

def test_first_use_creates_the_tables_in_the_schema_of_the_url_with_its_version(
        pg_url: str, mill: Mill) -> None:
    # when a Mill on a fresh schema enqueues its first job
    mill.enqueue("noop")
    # then the tables are in that schema, at this taskmill's version
    schema = schema_of(pg_url)
    with psycopg.connect(dsn_of(pg_url)) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}
        version = conn.execute(f'SELECT value FROM "{schema}".taskmill_meta '
                               f"WHERE key = 'schema_version'").fetchone()
    assert {"jobs", "job_logs", "queues", "periodic", "taskmill_meta"} <= tables
    assert version == (str(SCHEMA_VERSION),)


def test_migrate_from_many_processes_at_once_leaves_one_schema_at_the_current_version(
        pg_url: str) -> None:
    # given a schema name no one created yet
    url = pg_url.replace("schema=", "schema=n")
    try:
        backends = [PostgresBackend(url) for _ in range(4)]
        # when four of them migrate at the same moment
        versions = in_threads(4, lambda i: backends[i].migrate())
        # then all agree, and migrating again changes nothing
        assert versions == [SCHEMA_VERSION] * 4
        assert backends[0].migrate() == SCHEMA_VERSION == backends[0].schema_version()
    finally:
        for b in backends:
            b.close()
        with psycopg.connect(dsn_of(pg_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema_of(url)}" CASCADE')


def test_a_schema_written_by_a_newer_taskmill_is_refused(pg_url: str, backend: PostgresBackend
                                                          ) -> None:
    # given a schema that a later version of taskmill migrated
    backend.migrate()
    with psycopg.connect(dsn_of(pg_url), autocommit=True) as conn:
        conn.execute(f'UPDATE "{schema_of(pg_url)}".taskmill_meta SET value = %s',
                     (str(SCHEMA_VERSION + 1),))
    # when this taskmill opens it, it refuses rather than guess
    other = PostgresBackend(pg_url)
    try:
        with pytest.raises(ConfigError, match="newer"):
            other.get("1")
    finally:
        other.close()


def test_with_migrate_off_a_store_is_used_only_once_taskmill_migrate_has_run(pg_url: str) -> None:
    # given a backend told not to migrate on its own
    backend = PostgresBackend(pg_url + "&migrate=false")
    try:
        # then it refuses to work on an empty schema, and says what to run
        with pytest.raises(ConfigError, match="taskmill migrate"):
            backend.get("1")
        # and once migrated, it works
        assert backend.migrate() == SCHEMA_VERSION
        assert backend.get("1") is None
    finally:
        backend.close()


def test_two_installations_in_one_database_see_only_their_own_jobs(pg_url: str) -> None:
    # given two Mills on two schemas of one database
    other_url = pg_url.replace("schema=", "schema=o")
    a, b = Mill(pg_url), Mill(other_url)
    try:
        for m in (a, b):
            m.task(noop)
        # when each enqueues
        ja = a.enqueue("noop", args=["a"])
        b.enqueue("noop", args=["b"])
        b.enqueue("noop", args=["b"])
        # then each lists, counts and claims only its own
        assert [j.args for j in a.jobs()] == [["a"]]
        assert [j.args for j in b.jobs()] == [["b"], ["b"]]
        assert a.stats()["default"]["queued"] == 1
        claimed = a.backend.claim(None, 10, "w", "t", T0 + timedelta(minutes=1), T0)
        assert [j.id for j in claimed] == [ja.id]
    finally:
        a.close()
        b.close()
        with psycopg.connect(dsn_of(pg_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema_of(other_url)}" CASCADE')


@pytest.mark.parametrize("url, message", [
    ("postgresql://localhost/test?schema=bad-name", "schema"),
    ("postgresql://localhost/test?schema=x&migrate=maybe", "migrate"),
    ("postgresql://localhost/test?pool_max=0", "pool_max"),
    ("postgresql://localhost/test?no_such_libpq_option=1", "bad PostgreSQL URL"),
])
def test_a_bad_url_is_refused_when_the_backend_is_opened(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PostgresBackend(url)


def test_a_server_that_cannot_be_reached_gives_backend_unavailable_without_the_password() -> None:
    # given a URL of a port where nothing listens
    backend = PostgresBackend("postgresql://postgres:s3cret@127.0.0.1:1/test?pool_timeout=0.5")
    try:
        # when it is used, the caller gets the one error of an unreachable store, quickly
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as caught:
            backend.get("1")
        assert time.monotonic() - started < 5
        assert "s3cret" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)
    finally:
        backend.close()


def test_a_value_the_server_refuses_is_a_taskmill_error_not_an_outage_and_stores_nothing(
        mill: Mill, backend: PostgresBackend) -> None:
    # when a batch holds a queue name PostgreSQL cannot store (a NUL character, which the facade
    # refuses first; here it goes to the backend directly)
    bad = mill.build("noop")
    bad.queue = "a\x00b"
    with pytest.raises(TaskmillError) as refused:
        backend.enqueue([mill.build("noop"), bad], T0)
    # then it is not reported as the store being away (trying again would not help)
    assert not isinstance(refused.value, BackendUnavailable)
    # and nothing of it was stored
    assert mill.jobs() == []


def test_pooled_connections_commit_durably_in_utc(mill: Mill, backend: PostgresBackend) -> None:
    # given a claim, whose one transaction does not wait for the disk
    mill.enqueue("noop")
    assert backend.claim(None, 1, "w", "t", T0 + timedelta(minutes=1), T0)
    # then the sessions still commit durably, in UTC, whatever the server's defaults
    with backend._conn() as conn:
        settings = conn.execute("SELECT current_setting('synchronous_commit'), "
                                "current_setting('TimeZone')").fetchone()
    assert settings == ("on", "UTC")


# -- enqueue inside the application's transaction ------------------------------------------

def test_a_job_enqueued_in_the_applications_transaction_exists_once_it_commits(
        pg_url: str, mill: Mill) -> None:
    with psycopg.connect(dsn_of(pg_url)) as app:
        # given the application's own transaction, with its own write
        app.execute("CREATE TEMP TABLE orders (id int)")
        app.execute("INSERT INTO orders VALUES (1)")
        # when it enqueues on that connection
        with mill.using(app):
            job = mill.enqueue("noop", args=[1])
        # then no one else sees the job yet
        assert mill.get(job.id) is None
        # and once the application commits, it is there
        app.commit()
    assert mill.get(job.id) is not None and mill.get(job.id).state is JobState.QUEUED  # type: ignore[union-attr]


def test_a_job_enqueued_in_the_applications_transaction_vanishes_when_it_rolls_back(
        pg_url: str, mill: Mill) -> None:
    with psycopg.connect(dsn_of(pg_url)) as app:
        # given jobs enqueued, one and many, unique too, in the application's transaction
        with mill.using(app):
            one = mill.enqueue("noop", args=[1])
            many = mill.enqueue_many([{"task": "noop", "args": [n]} for n in range(3)])
            unique = mill.enqueue("noop", args=[9], unique=True)
        # when the application rolls back
        app.rollback()
    # then none of them exists
    for job in (one, *many, unique):
        assert mill.get(job.id) is None
    assert mill.jobs() == []


def test_a_big_batch_is_written_by_copy_in_order_and_shares_the_applications_fate(
        pg_url: str, mill: Mill) -> None:
    # given batches big enough to go by COPY (and one just too small), one in the application's
    # transaction
    backend = mill.backend
    assert isinstance(backend, PostgresBackend)
    copies: list[int] = []
    real_copy = backend._copy

    def copy(conn: Any, jobs: Any, rows: Any) -> Any:
        copies.append(len(jobs))
        return real_copy(conn, jobs, rows)

    backend._copy = copy  # type: ignore[method-assign]
    small = mill.enqueue_many([{"task": "noop"}] * (COPY_FROM - 1))
    assert copies == [] and len(small) == COPY_FROM - 1
    mill.delete_all()
    count = COPY_FROM + 20
    specs = [{"task": "noop", "args": [n], "title": f"job\t{n}\n\\"} for n in range(count)]
    with psycopg.connect(dsn_of(pg_url)) as app:
        with mill.using(app):
            doomed = mill.enqueue_many(specs)
        # when the application rolls back, and another batch is enqueued on its own
        app.rollback()
    kept = mill.enqueue_many(specs)
    # then the first left nothing, and the second is stored whole, ids rising in the order given,
    # every value as sent (tabs, newlines and backslashes too)
    assert copies == [count, count]
    assert all(mill.get(job.id) is None for job in doomed[:3])
    assert [int(j.id) for j in kept] == sorted(int(j.id) for j in kept)
    stored = mill.jobs(limit=count + 1)
    assert len(stored) == count
    assert [(j.args, j.title) for j in reversed(stored)] == [(s["args"], s["title"]) for s in specs]


def test_in_an_explicit_transaction_block_the_jobs_share_its_fate(pg_url: str, mill: Mill) -> None:
    with psycopg.connect(dsn_of(pg_url), autocommit=True) as app:
        # when an autocommit application enqueues inside its transaction block, which fails later
        with pytest.raises(RuntimeError), app.transaction():
            with mill.using(app):
                doomed = mill.enqueue("noop", args=["doomed"])
            raise RuntimeError("the request failed")
        # and inside another, which succeeds
        with app.transaction(), mill.using(app):
            kept = mill.enqueue("noop", args=["kept"])
    # then only the second one's job exists
    assert mill.get(doomed.id) is None
    assert mill.get(kept.id) is not None


def test_a_failed_enqueue_leaves_the_applications_open_transaction_usable(
        pg_url: str, mill: Mill) -> None:
    with psycopg.connect(dsn_of(pg_url)) as app:
        app.execute("SELECT 1")  # the application's transaction is open
        # when an enqueue in it fails in the store
        bad = mill.build("noop")
        bad.queue = "bad\x00queue"
        with mill.using(app), pytest.raises(TaskmillError):
            mill.backend.enqueue([bad], T0)
        # then the application's transaction goes on, and what it enqueues next commits with it
        with mill.using(app):
            job = mill.enqueue("noop")
        app.commit()
    assert mill.get(job.id) is not None


def test_an_async_enqueue_joins_the_applications_transaction_too(pg_url: str, mill: Mill) -> None:
    import asyncio

    with psycopg.connect(dsn_of(pg_url)) as app:
        # when async code enqueues inside `using` (the store is written off the event loop)
        with mill.using(app):
            job = asyncio.run(mill.enqueue_async("noop", args=["async"]))
        # then the job waits for the application's commit like any other
        assert mill.get(job.id) is None
        app.commit()
    assert mill.get(job.id) is not None


def test_using_refuses_what_is_not_a_psycopg_connection(mill: Mill) -> None:
    with mill.using(object()), pytest.raises(ConfigError, match="psycopg"):
        mill.enqueue("noop")


def test_a_worker_is_woken_when_the_applications_transaction_commits_not_before(
        pg_url: str, mill: Mill) -> None:
    # given a worker's backend waiting for work (listening already)
    worker_side = PostgresBackend(pg_url)
    try:
        worker_side.wait_for_work(0.01)
        woke_at: list[float] = []
        waiter = threading.Thread(target=lambda: (worker_side.wait_for_work(10),
                                                  woke_at.append(time.monotonic())))
        waiter.start()
        with psycopg.connect(dsn_of(pg_url)) as app:
            # when the application enqueues in its transaction and commits half a second later
            with mill.using(app):
                mill.enqueue("noop")
            time.sleep(0.5)
            committed_at = time.monotonic()
            app.commit()
        waiter.join(10)
        # then the worker woke after the commit, and soon after it
        assert woke_at and committed_at <= woke_at[0] < committed_at + 2
    finally:
        worker_side.close()


# -- races between hosts --------------------------------------------------------------------

def test_a_unique_job_enqueued_by_many_hosts_at_once_is_stored_once(pg_url: str, mill: Mill) -> None:
    # given eight hosts, each with its own backend
    hosts = [PostgresBackend(pg_url) for _ in range(8)]
    try:
        # when each enqueues the same unique job at the same moment
        def enqueue(i: int) -> str:
            job = mill.build("noop", args=[42], unique=True, now=T0)
            return hosts[i].enqueue([job], T0)[0].id

        found = in_threads(8, enqueue)
        # then there is one job, and every caller got it
        assert len(set(found)) == 1
        assert len(mill.backend.query(JobFilter(), 100, None)[0]) == 1
    finally:
        for b in hosts:
            b.close()


def test_concurrent_claims_from_many_hosts_take_each_job_exactly_once(pg_url: str, mill: Mill
                                                                       ) -> None:
    # given 200 queued jobs and eight hosts claiming in batches of 7
    mill.enqueue_many([{"task": "noop", "args": [n]} for n in range(200)])
    hosts = [PostgresBackend(pg_url) for _ in range(8)]
    try:
        def take(i: int) -> list[str]:
            got: list[str] = []
            while batch := hosts[i].claim(None, 7, f"w{i}", f"t{i}", T0 + timedelta(minutes=1), T0):
                got.extend(j.id for j in batch)
            return got

        # when they claim until nothing is left
        claimed = [job_id for got in in_threads(8, take) for job_id in got]
        # then every job was claimed once
        assert len(claimed) == len(set(claimed)) == 200
    finally:
        for b in hosts:
            b.close()


def test_a_periodic_slot_fired_by_many_hosts_at_once_runs_once(pg_url: str, mill: Mill) -> None:
    hosts = [PostgresBackend(pg_url) for _ in range(8)]
    try:
        hosts[0].periodic_register("noop", T0)
        slot = T0 + timedelta(minutes=5)

        def fire(i: int) -> bool:
            job = mill.build("noop", now=slot)
            return hosts[i].periodic_fire("noop", slot, job, slot) is not None

        # when eight hosts fire the same slot at the same moment
        fired = in_threads(8, fire)
        # then one of them did, and one job exists
        assert fired.count(True) == 1
        assert len(mill.jobs()) == 1
        assert mill.backend.periodic_states()["noop"].last_slot == slot
    finally:
        for b in hosts:
            b.close()


def test_a_batch_that_writes_one_job_twice_applies_the_writes_in_order(mill: Mill) -> None:
    # given a running job
    from taskmill import transitions
    from taskmill.job import Update
    from taskmill.transitions import Succeeded

    mill.enqueue("noop")
    running = mill.backend.claim(None, 1, "w", "tok", T0 + timedelta(minutes=1), T0)[0]
    done = transitions.finish(running, Succeeded(1), T0)
    # when one batch completes it twice under the same claim
    written = mill.backend.apply([Update(done, JobState.RUNNING, "tok"),
                                  Update(done, JobState.RUNNING, "tok")], T0)
    # then the first write holds and the second finds the job no longer running
    assert written == [True, False]


# -- wake-ups -------------------------------------------------------------------------------

def listening_sessions(pg_url: str) -> int:
    with psycopg.connect(dsn_of(pg_url)) as conn:
        return int(conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND query LIKE 'LISTEN%%'", (f"taskmill:{schema_of(pg_url)}",)).fetchone()[0])


def test_only_a_waiting_worker_opens_a_listening_connection(pg_url: str, mill: Mill) -> None:
    # when an application only enqueues and reads
    mill.enqueue("noop")
    mill.jobs()
    # then it holds no listening connection
    assert listening_sessions(pg_url) == 0
    # and a worker that waits for work opens one, once
    mill.backend.wait_for_work(0.01)
    mill.backend.wait_for_work(0.01)
    assert listening_sessions(pg_url) == 1


def test_an_enqueue_on_another_host_wakes_a_waiting_worker_at_once(pg_url: str, mill: Mill) -> None:
    # given a worker's backend, waiting with a long poll
    worker_side = PostgresBackend(pg_url)
    try:
        worker_side.wait_for_work(0.01)
        started = time.monotonic()
        waiter = threading.Thread(target=worker_side.wait_for_work, args=(10,))
        waiter.start()
        time.sleep(0.1)
        # when another host enqueues
        mill.enqueue("noop")
        waiter.join(10)
        # then the worker woke long before its poll
        assert not waiter.is_alive() and time.monotonic() - started < 3
    finally:
        worker_side.close()


def test_without_a_wake_up_waiting_lasts_the_timeout(backend: PostgresBackend) -> None:
    backend.wait_for_work(0.01)
    started = time.monotonic()
    backend.wait_for_work(0.3)
    assert 0.25 <= time.monotonic() - started < 2


def test_threads_of_one_process_waiting_together_are_all_woken(pg_url: str, mill: Mill) -> None:
    # given four threads of one worker process waiting on one backend
    worker_side = PostgresBackend(pg_url)
    try:
        worker_side.wait_for_work(0.01)
        waiters = [threading.Thread(target=worker_side.wait_for_work, args=(10,)) for _ in range(4)]
        started = time.monotonic()
        for w in waiters:
            w.start()
        time.sleep(0.1)
        # when a job is enqueued elsewhere
        mill.enqueue("noop")
        for w in waiters:
            w.join(10)
        # then each of them woke
        assert not any(w.is_alive() for w in waiters) and time.monotonic() - started < 3
    finally:
        worker_side.close()


def test_a_thread_waiting_behind_another_listens_once_the_other_stops(pg_url: str, mill: Mill
                                                                       ) -> None:
    # given two threads of one process waiting: the first, which listens, only briefly
    worker_side = PostgresBackend(pg_url)
    try:
        worker_side.wait_for_work(0.01)
        first = threading.Thread(target=worker_side.wait_for_work, args=(0.2,))
        second = threading.Thread(target=worker_side.wait_for_work, args=(10,))
        first.start()
        time.sleep(0.05)
        second.start()
        first.join(5)
        # when a job is enqueued after the first one stopped waiting
        time.sleep(0.2)
        enqueued = time.monotonic()
        mill.enqueue("noop")
        second.join(10)
        # then the second, which took over listening, woke at once
        assert not second.is_alive() and time.monotonic() - enqueued < 2
    finally:
        worker_side.close()


def test_a_worker_runs_jobs_enqueued_while_it_waits_without_waiting_for_its_poll(
        pg_url: str) -> None:
    # given a worker with a poll of a minute, idle
    worker_mill, app = Mill(pg_url), Mill(pg_url)
    try:
        for m in (worker_mill, app):
            m.task(noop)
        worker = worker_mill.worker(concurrency=2, poll="60s")
        worker.start()
        time.sleep(0.3)
        # when the application enqueues
        job = app.enqueue("noop")
        # then it runs at once
        assert job.wait(timeout=5).state is JobState.SUCCEEDED
        worker.stop(grace=1)
    finally:
        worker_mill.close()
        app.close()


# -- indexes --------------------------------------------------------------------------------

def plan(pg_url: str, sql: str) -> str:
    with psycopg.connect(dsn_of(pg_url)) as conn:
        conn.execute(f'SET search_path TO "{schema_of(pg_url)}"')
        conn.execute("SET enable_seqscan TO off")  # a plan that cannot use an index shows it
        rows = conn.execute("EXPLAIN " + sql).fetchall()
    return "\n".join(r[0] for r in rows)


def test_claim_promote_rescue_and_prune_never_scan_the_finished_jobs(
        pg_url: str, backend: PostgresBackend) -> None:
    # given a table with many finished jobs and a few live ones
    backend.migrate()
    with psycopg.connect(dsn_of(pg_url), autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema_of(pg_url)}"')
        conn.execute(
            "INSERT INTO jobs (task, queue, state, args, kwargs, max_attempts, retry, created_at,"
            " scheduled_at, finished_at, lease_until, max_iterations) SELECT 'noop', 'default',"
            " CASE WHEN n <= 20000 THEN 'succeeded' ELSE (ARRAY['queued', 'scheduled', 'running'])"
            "[n % 3 + 1] END, '[]', '{}', 1, '{}', now(), now(), now(), now(), 1"
            " FROM generate_series(1, 20030) AS n")
        conn.execute("ANALYZE jobs")
    # then each scheduler query finds its rows through an index, never reading the table through
    queries = {
        "claim": "SELECT id FROM jobs WHERE state = 'queued' AND queue = ANY('{default}') "
                 "ORDER BY priority DESC, scheduled_at, id LIMIT 10 FOR UPDATE SKIP LOCKED",
        "promote": "SELECT id FROM jobs WHERE state = 'scheduled' AND scheduled_at <= now() "
                   "ORDER BY scheduled_at LIMIT 1000",
        "rescue": "SELECT * FROM jobs WHERE state = 'running' AND lease_until < now() "
                  "ORDER BY lease_until LIMIT 100",
        "unique": "SELECT * FROM jobs WHERE unique_key = 'k' AND state IN ('scheduled', 'queued') "
                  "ORDER BY id LIMIT 1",
        "prune": "SELECT id FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') "
                 "AND finished_at < now() ORDER BY finished_at LIMIT 100",
    }
    for name, sql in queries.items():
        shown = plan(pg_url, sql)
        assert "Seq Scan" not in shown and "Index" in shown, f"{name}:\n{shown}"


# -- processes ------------------------------------------------------------------------------

def _in_child(work: Callable[[], None]) -> bytes:
    """Run `work` in a forked child: b"\\x00" if it returned, b"\\x01" if it raised, b"" if the
    child died first (killed by its alarm, say)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            work()
            code = 0
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    status = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    return status


def test_a_forked_child_uses_connections_of_its_own_and_the_parent_keeps_working(
        mill: Mill) -> None:
    # given a parent that used its pool
    mill.enqueue("noop", args=["parent"])
    def child() -> None:  # drop the inherited pool, enqueue
        mill.backend.after_fork()
        mill.enqueue("noop", args=["child"])

    status = _in_child(child)
    # then the child enqueued on its own connections, and the parent's still work
    assert status == b"\x00"
    mill.enqueue("noop", args=["parent again"])
    assert sorted(j.args[0] for j in mill.jobs()) == ["child", "parent", "parent again"]


def test_a_child_forked_while_a_parent_thread_uses_the_lane_works_and_closes_at_once(
        mill: Mill, backend: PostgresBackend) -> None:
    # given a parent thread in the middle of a statement on the lane when the process forks
    mill.enqueue("noop", args=["parent"])
    inside, release = threading.Event(), threading.Event()

    def hold_the_lane() -> None:
        with backend._conn():
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lane)
    holder.start()
    assert inside.wait(5)
    def child() -> None:  # without after_fork(): enqueue, then close, within 5 seconds
        signal.alarm(5)
        mill.enqueue("noop", args=["child"])
        mill.close()

    status = _in_child(child)
    release.set()
    holder.join(5)
    # then the child neither waited for the parent's lane nor took it, and the parent goes on
    assert status == b"\x00"
    mill.enqueue("noop", args=["parent again"])
    assert sorted(j.args[0] for j in mill.jobs()) == ["child", "parent", "parent again"]


def test_a_mill_on_postgresql_runs_retries_and_finishes_jobs_through_a_worker(mill: Mill) -> None:
    # given jobs, one of which fails once
    attempts: list[int] = []

    @mill.task(retry=[(1, "1s")])
    def flaky(ctx: Any) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ValueError("first try fails")
        ctx.log.info("second try")
        return "ok"

    jobs = [mill.enqueue("noop", args=[n]) for n in range(10)]
    job = flaky.enqueue()
    # when a worker drains, and again once the retry is due
    drain(mill, concurrency=4)
    mill.clock.advance("2s")  # type: ignore[attr-defined]
    drain(mill, concurrency=4)
    # then everything succeeded, the flaky one on its second attempt, with its log
    assert all(j.refresh().state is JobState.SUCCEEDED for j in jobs)
    job.refresh()
    assert (job.state, job.result, job.attempts, attempts) == (JobState.SUCCEEDED, "ok", 2, [1, 2])
    assert [r.message for r in job.logs()] == ["second try"]


def test_a_task_whose_error_holds_a_nul_character_ends_failed_and_the_worker_goes_on(
        mill: Mill) -> None:
    # given a task whose exception message holds a NUL character, which PostgreSQL refuses
    @mill.task(retry=0)
    def nul(ctx: Any) -> None:
        raise ValueError("bad\x00byte")

    job = nul.enqueue()
    other = mill.enqueue("noop")
    # when a worker runs it and another job
    drain(mill)
    # then it failed, with the character written out, and the other job was not held up
    job.refresh()
    assert job.state is JobState.FAILED and job.error is not None
    assert job.error.message == "bad\\x00byte"
    assert other.refresh().state is JobState.SUCCEEDED


def test_taskmill_migrate_prepares_a_store_that_does_not_migrate_itself(pg_url: str) -> None:
    import subprocess
    import sys

    # given a URL that tells taskmill not to migrate on first use
    url = pg_url + "&migrate=false"
    # when `taskmill migrate` runs on it
    proc = subprocess.run([sys.executable, "-m", "taskmill", "migrate", "--url", url],
                          capture_output=True, text=True, timeout=60)
    # then it succeeds, and the store is ready at the current version
    assert proc.returncode == 0, proc.stderr
    backend = PostgresBackend(url)
    try:
        assert backend.schema_version() == SCHEMA_VERSION and backend.get("1") is None
    finally:
        backend.close()


def test_promotion_skips_a_job_an_applications_open_transaction_holds_and_promotes_the_rest(
        pg_url: str, mill: Mill) -> None:
    # given two jobs due now, one of which an application is rescheduling in its open transaction
    held = mill.enqueue("noop", args=["held"], delay="1m")
    free = mill.enqueue("noop", args=["free"], delay="1m")
    with psycopg.connect(dsn_of(pg_url)) as app:
        with mill.using(app):
            mill.enqueue("noop", args=["held"], delay="2m", unique="reschedule")
        # when a worker promotes what is due meanwhile
        started = time.monotonic()
        promoted = mill.backend.promote_due(T0 + timedelta(minutes=1), 100)
        # then it does not wait for the application, and promotes the job that is free
        assert time.monotonic() - started < 2
        assert promoted == 1 and mill.get(free.id).state is JobState.QUEUED  # type: ignore[union-attr]
        app.commit()
    assert mill.get(held.id).scheduled_at == T0 + timedelta(minutes=2)  # type: ignore[union-attr]


def test_a_claim_walks_the_claim_index_even_when_the_statistics_say_the_queue_is_empty(
        mill: Mill, backend: PostgresBackend) -> None:
    # given statistics taken when nothing was queued, and then thousands of queued jobs
    backend.migrate()
    with backend._conn() as conn:
        conn.execute(f'ANALYZE "{backend.schema}".jobs')
    mill.enqueue_many([{"task": "noop"} for _ in range(5000)])
    # when the backend plans a claim of 8, by a worker of every queue and by one of some
    params = {"limit": 8, "now": T0, "token": "t", "worker": "w", "lease_until": T0}
    for query, queues in (("claim_all", {}), ("claim", {"queues": ["default", "other"]})):
        with backend._conn() as conn:
            shown = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN " + backend.q[query], {**params, **queues}))
        # then it reads the first 8 in the claim index's order, not sorting every queued job
        assert "jobs_claim" in shown and "Sort" not in shown, shown


def test_apply_and_claim_writes_the_finished_jobs_and_claims_the_next_in_one_go(
        mill: Mill, backend: PostgresBackend) -> None:
    from taskmill import transitions
    from taskmill.job import Update
    from taskmill.transitions import Succeeded

    # given two running jobs (one of whose claims is stale), and jobs queued in two queues
    mill.enqueue_many([{"task": "noop", "args": [n]} for n in range(2)])
    running = backend.claim(None, 2, "w", "tok", T0 + timedelta(minutes=1), T0)
    mill.enqueue_many([{"task": "noop", "args": [n], "queue": "a"} for n in range(2, 5)])
    mill.enqueue("noop", args=[5], queue="b")
    updates = [Update(transitions.finish(running[0], Succeeded(1), T0), JobState.RUNNING, "tok"),
               Update(transitions.finish(running[1], Succeeded(2), T0), JobState.RUNNING, "old")]
    # when a worker of queue "a" writes both and claims two more in one call
    applied, claimed = backend.apply_and_claim(updates, T0, ["a"], 2, "w2", "tok2",
                                               T0 + timedelta(minutes=1))
    # then only the write under the live claim holds, and the first two jobs of "a" are claimed
    assert applied == [True, False]
    assert [j.args for j in claimed] == [[2], [3]]
    assert all((j.state, j.claim_token, j.worker, j.attempts) == (JobState.RUNNING, "tok2", "w2", 1)
               for j in claimed)
    assert mill.get(running[0].id).state is JobState.SUCCEEDED  # type: ignore[union-attr]
    assert mill.get(running[1].id).state is JobState.RUNNING  # type: ignore[union-attr]
    # and with no free slot, or a paused queue, it claims nothing but still writes
    again = backend.claim(None, 1, "w", "tok3", T0 + timedelta(minutes=1), T0)
    backend.set_paused("a", True)
    done = [Update(transitions.finish(again[0], Succeeded(3), T0), JobState.RUNNING, "tok3")]
    assert backend.apply_and_claim(done, T0, ["a"], 5, "w2", "t", T0) == ([True], [])
