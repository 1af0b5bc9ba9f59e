"""The benchmark's quick mode runs in the suite, so it cannot rot (a smoke run, not a timing test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
