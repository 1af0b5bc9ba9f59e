"""The benchmark's quick mode runs in the suite, so it cannot rot (a smoke run, not a timing test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_benchmark_on_sqlite_completes_and_runs_each_job_exactly_once(tmp_path: Path) -> None:
    # Given the benchmark in its quick mode on SQLite (it fails if a job is lost or runs twice)
    out = tmp_path / "latest.md"

    # When it runs as a user runs it
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--stores",
                           "sqlite", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)

    # Then it completes, checked every job, and wrote a row of figures per measure and setting
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "checked that each job ran (or was stored) exactly once" in text
    for setting in ("FULL", "NORMAL"):
        rows = [line for line in text.splitlines() if line.startswith(f"| sqlite (synchronous={setting})")]
        assert len(rows) == 5, text
        assert all("/s" in row or "ms" in row for row in rows)


@pytest.mark.parametrize(("store", "fixture", "variable", "label"), [
    ("postgres", "pg_url", "TASKMILL_BENCH_PG", "postgres (synchronous_commit=on)"),
    ("redis", "redis_url", "TASKMILL_BENCH_REDIS", "redis"),
])
def test_the_quick_benchmark_on_a_server_gives_each_figure_its_raw_limit_and_target(
        store: str, fixture: str, variable: str, label: str, request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    # Given a server the test suite reaches (else the fixture skips loudly, or fails under CI)
    server = str(request.getfixturevalue(fixture)).partition("?")[0]
    out = tmp_path / "latest.md"

    # When the quick benchmark runs on it
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--stores",
                           store, "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, variable: server})

    # Then it completes, checked every job, and each rate has a raw figure, a ratio and a target
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "skipped" not in text, text
    assert "checked that each job ran (or was stored) exactly once" in text
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in text.splitlines()
            if line.startswith(f"| {label} |")]
    assert len(rows) == 5, text
    rates = [row for row in rows if row[2].endswith("/s")]
    assert len(rates) == 3, text
    for _, measure, _, _, raw, ratio, target in rates:
        assert raw.split(" ")[0].endswith("/s") and "(" in raw, measure
        assert ratio.endswith("%"), measure
        assert target.endswith(("✔", "✘")), measure
