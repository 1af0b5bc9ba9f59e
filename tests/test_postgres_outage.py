"""The store going away and coming back. The shared server is never restarted: its sessions of the
test's own backend are ended with `pg_terminate_backend`, and a whole outage is a TCP proxy between
the backend and the server that drops every connection and refuses new ones until it is brought up
again (to the client, a server that went down)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

psycopg = pytest.importorskip("psycopg")

from taskmill import Mill  # noqa: E402
from taskmill.backends.postgres import PostgresBackend  # noqa: E402
from taskmill.errors import BackendUnavailable  # noqa: E402
from taskmill.job import JobState  # noqa: E402


def schema_of(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


def dsn_of(url: str) -> str:
    return url.split("?", 1)[0]


def noop(ctx: Any, *args: Any, **kwargs: Any) -> None:
    """Does nothing."""


def terminate_sessions(pg_url: str) -> int:
    """End every session the test's backends hold (they carry the schema in application_name),
    and wait until the server has let them go."""
    name = f"taskmill:{schema_of(pg_url)}"
    with psycopg.connect(dsn_of(pg_url), autocommit=True) as admin:
        ended = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = %s", (name,)).fetchone()[0]
        deadline = time.monotonic() + 10
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (name,)).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.02)
    return int(ended)


class Proxy:
    """A TCP proxy to the server that can be taken down (every connection dropped, new ones
    refused) and brought back up on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy(pg_url: str) -> Iterator[Proxy]:
    parts = urlsplit(pg_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    yield proxy
    proxy.down()


def through(pg_url: str, proxy: Proxy, options: str = "") -> str:
    parts = urlsplit(pg_url)
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else \
        f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc)) + options


def eventually(call: Any, within: float = 20.0) -> Any:
    """`call()`'s value once it stops raising BackendUnavailable (the pool reconnects with backoff)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return call()
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- sessions ended by the server -------------------------------------------------------------

def test_after_the_server_ends_its_sessions_the_next_call_works_on_new_ones(pg_url: str) -> None:
    # given a backend that has used several pooled connections
    mill = Mill(pg_url)
    mill.task(noop)
    try:
        first = mill.enqueue("noop")
        threads = [threading.Thread(target=mill.jobs) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # when the server ends every one of them
        assert terminate_sessions(pg_url) >= 1
        # then the very next calls work, on fresh connections
        second = mill.enqueue("noop")
        assert mill.get(first.id) is not None and mill.get(second.id) is not None
        assert len(mill.jobs()) == 2
    finally:
        mill.close()


def test_a_worker_whose_listening_session_is_ended_listens_again(pg_url: str) -> None:
    # given a worker's backend listening for wake-ups
    worker_side, app = PostgresBackend(pg_url), Mill(pg_url)
    app.task(noop)
    try:
        worker_side.wait_for_work(0.01)
        # when the server ends its sessions, the listening one among them
        terminate_sessions(pg_url)
        # then waiting reports the lost store at most once, then listens again and is woken
        with contextlib.suppress(BackendUnavailable):
            worker_side.wait_for_work(0.2)
        worker_side.wait_for_work(0.01)
        woke = threading.Event()
        waiter = threading.Thread(target=lambda: (worker_side.wait_for_work(10), woke.set()))
        started = time.monotonic()
        waiter.start()
        time.sleep(0.1)
        app.enqueue("noop")
        waiter.join(10)
        assert woke.is_set() and time.monotonic() - started < 3
    finally:
        worker_side.close()
        app.close()


def test_a_running_worker_keeps_going_when_its_sessions_are_ended(pg_url: str) -> None:
    # given a worker running jobs
    worker_mill, app = Mill(pg_url), Mill(pg_url)
    try:
        for m in (worker_mill, app):
            @m.task(name="nap")
            def nap(ctx: Any) -> None:
                time.sleep(0.02)
        worker = worker_mill.worker(concurrency=4, poll="200ms")
        worker.start()
        jobs = [app.enqueue("nap") for _ in range(20)]
        # when the server ends all of the worker's sessions twice while it works
        for _ in range(2):
            time.sleep(0.15)
            terminate_sessions(pg_url)
        jobs += [app.enqueue("nap") for _ in range(20)]
        # then every job still ends succeeded
        for job in jobs:
            assert job.wait(timeout=30).state is JobState.SUCCEEDED
        worker.stop(grace=2)
    finally:
        worker_mill.close()
        app.close()


# -- the server down, then back ----------------------------------------------------------------

def test_an_enqueue_while_the_store_is_down_raises_backend_unavailable_and_works_once_it_is_back(
        pg_url: str, proxy: Proxy) -> None:
    # given a Mill that reached its store through the network
    mill = Mill(through(pg_url, proxy, "&pool_timeout=0.5"))
    mill.task(noop)
    try:
        before = mill.enqueue("noop")
        # when the store goes away, an enqueue fails with the clear error, quickly
        proxy.down()
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="PostgreSQL at"):
            mill.enqueue("noop")
        assert time.monotonic() - started < 5
        # and once it is back, enqueues work again, and what was stored before is there
        proxy.up()
        after = eventually(lambda: mill.enqueue("noop"))
        assert {j.id for j in mill.jobs()} == {before.id, after.id}
    finally:
        mill.close()


def test_a_worker_survives_an_outage_of_its_store_and_no_acknowledged_job_is_lost(
        pg_url: str, proxy: Proxy) -> None:
    # given a worker that reaches the store through the network, and an app that reaches it directly
    worker_mill, app = Mill(through(pg_url, proxy, "&pool_timeout=1")), Mill(pg_url)
    try:
        for m in (worker_mill, app):
            # (a claim whose answer the outage swallowed is rescued once its lease runs out,
            # and retried: both short here so the test is quick)
            @m.task(name="nap", retry=[(5, "100ms")])
            def nap(ctx: Any, n: int) -> int:
                time.sleep(0.05)
                return n
        worker = worker_mill.worker(concurrency=4, poll="200ms", lease="2s")
        worker.start()
        jobs = [app.enqueue("nap", kwargs={"n": n}) for n in range(40)]
        # when the store goes away for a while in the middle of the work, jobs being enqueued still
        time.sleep(0.2)
        proxy.down()
        jobs += [app.enqueue("nap", kwargs={"n": n}) for n in range(40, 60)]
        time.sleep(1.5)
        proxy.up()
        # then every acknowledged job ends succeeded, with its own result
        for job in jobs:
            done = job.wait(timeout=60)
            assert (done.state, done.result) == (JobState.SUCCEEDED, done.kwargs["n"])
        assert sum(1 for j in app.jobs(limit=1000) if j.state is JobState.SUCCEEDED) == 60
        worker.stop(grace=2)
    finally:
        worker_mill.close()
        app.close()
