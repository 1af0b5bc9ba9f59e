"""The same commands on PostgreSQL and Redis: a job's whole life managed from the shell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import make_cli, one_line_error


@pytest.fixture(params=["pg_url", "redis_url"])
def store_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def test_a_jobs_whole_life_from_the_shell(tmp_path: Path, store_url: str) -> None:
    # Given the test app on the store
    cli = make_cli(tmp_path, store_url)
    assert cli("migrate").returncode == 0
    # When jobs are enqueued, one cancelled, and a burst worker runs
    ok = cli.enqueue("add", "-k", "a=40", "-k", "b=2")
    bad = cli.enqueue("boom", "-k", "message=no disk")
    gone = cli.enqueue("add", "-k", "a=1")
    assert cli("cancel", gone).returncode == 0
    assert cli.enqueue("add", "-k", "a=40", "-k", "b=2", "--unique") == ok  # the one waiting
    cli.burst()
    # Then each command sees what happened
    states = {j["id"]: j["state"] for j in json.loads(cli("ls", "--json").stdout)["items"]}
    assert (states[ok], states[bad], states[gone]) == ("succeeded", "failed", "cancelled")
    assert cli("wait", ok).returncode == 0
    assert "failed: ValueError: no disk" in one_line_error(cli("wait", bad))
    assert "raise ValueError(message)" in cli("show", bad).stdout
    assert "adding 40 and 2" in cli("logs", ok).stdout
    assert json.loads(cli("stats", "--json").stdout)["default"]["failed"] == 1
    # And a retry runs the failed job again, rm deletes it, and it is then unknown
    assert cli("retry", bad).returncode == 0
    cli.burst()
    assert cli.job(bad)["attempts"] == 2
    assert cli("rm", bad).returncode == 0
    assert one_line_error(cli("show", bad)) == f"Error: no job with id '{bad}'"
    # And a paused queue is reported as paused
    assert cli("queues", "pause", "default").returncode == 0
    assert {q["name"]: q["paused"] for q in json.loads(cli("queues", "--json").stdout)}["default"]
    assert "deleted" in cli("purge", "--yes").stdout
