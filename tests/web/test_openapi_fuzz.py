"""A schemathesis run against /api/openapi.json: generated requests to every operation find no
server error, and each answer matches the document (status, content type, schema)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from taskmill.web import create_app  # noqa: E402

from .app import build_mill  # noqa: E402

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# One store for the whole run (hypothesis calls the test many times; fixtures would not reset).
_dir = tempfile.mkdtemp(prefix="taskmill-fuzz-")
MILL = build_mill(f"sqlite:///{os.path.join(_dir, 'fuzz.db')}")
MILL.enqueue("add", kwargs={"a": 1})
MILL.enqueue("boom")
MILL.worker(poll="50ms").run(burst=True)
MILL.enqueue("slow", kwargs={"steps": 1, "pause": 0})
APP = create_app(MILL, token=TOKEN)
atexit.register(shutil.rmtree, _dir, True)
atexit.register(MILL.close)

schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP, headers=AUTH)
# The events stream of a job that never finishes would not end; its endpoint has tests of its own.
schema = schema.exclude(path="/api/jobs/{id}/events")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_makes_a_server_error(case: Any) -> None:
    # A request the document allows may still be refused with a declared 422: a task's input is
    # checked against that task's own model (and a task name must be registered).
    case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])
