"""Fixtures of the web tests: a mill on a temp SQLite file with the tasks of `app.py`, a worker
thread, Starlette test clients as a loopback or a remote client, and, for the browser tests, the app
served by uvicorn on a free loopback port with headless Chromium (Debian's) driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from taskmill import Mill
from taskmill.web import Principal, create_app
from taskmill.worker import Worker

from .app import build_mill

LOOPBACK = ("127.0.0.1", 50000)
LOCAL = "http://127.0.0.1:8000"  # the Host a local browser sends
REMOTE = ("203.0.113.9", 50000)  # TEST-NET-3: never routed, only a label in the ASGI scope
CHROMIUM = os.environ.get("TASKMILL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(autouse=True)
def no_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKMILL_TOKEN", raising=False)


@pytest.fixture
def mill(sqlite_url: str) -> Iterator[Mill]:
    with build_mill(sqlite_url) as mill:
        yield mill


@pytest.fixture
def worker(mill: Mill) -> Iterator[Worker]:
    worker = mill.worker(concurrency=4, poll="100ms", lease="5s", grace="1s")
    worker.start()
    yield worker
    worker.stop(grace=1)


@pytest.fixture
def client(mill: Mill) -> Iterator[TestClient]:
    """The app with no token, as seen from loopback: an admin."""
    with TestClient(create_app(mill), client=LOOPBACK, base_url=LOCAL) as client:
        yield client


def header_users(request: Any) -> Principal | None:
    """An app's own authentication: the X-User header names a user; 'root' is an admin."""
    user = request.headers.get("x-user")
    if not user:
        return None
    return Principal(owner=f"user:{user}", admin=user == "root")


@pytest.fixture
def as_user(mill: Mill) -> Iterator[Callable[[str], TestClient]]:
    """Clients of an app that authenticates by the X-User header."""
    app = create_app(mill, authenticate=header_users)
    clients: list[TestClient] = []

    def make(user: str) -> TestClient:
        client = TestClient(app, client=REMOTE, headers={"x-user": user})
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {predicate}")
        time.sleep(every)


# -- browser -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """The app served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        message = f"Chromium is not at {CHROMIUM}: `apt-get install -y chromium` to run the browser tests"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {message}", pytrace=False)
        pytest.skip(f"SKIPPED LOUDLY: {message}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and Playwright is missing: {exc}", pytrace=False)
        pytest.skip(f"SKIPPED LOUDLY: Playwright is missing ({exc}): pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def served(mill: Mill, worker: Worker) -> Iterator[Served]:
    """The app with no token (the browser is on loopback), and a worker running."""
    with Served(create_app(mill)) as served:
        yield served


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
