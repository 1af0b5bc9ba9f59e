"""The peer benchmark's quick mode, so that it cannot rot: taskmill on the stores it has, plus
whichever peers happen to be importable in this venv (nothing is installed here; the others are
skipped with a printed line). It checks that each measured job ran exactly once, not timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "peers" / "run.py"
SCENARIOS = {"fill+drain", "latency", "io", "cpu"}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_quick_peer_benchmark_runs_every_measured_job_exactly_once(tmp_path: Path) -> None:
    out = tmp_path / "peers.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listing = subprocess.run([sys.executable, str(RUN), "--list"], capture_output=True, text=True,
                             env=env, cwd=ROOT, timeout=60, check=True).stdout
    keys = [line.split()[0] for line in listing.splitlines() if line.strip()]
    proc = subprocess.run([sys.executable, str(RUN), "--quick", "--out", str(out)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=1100)
    print(proc.stderr)  # the progress and the SKIP lines, shown by pytest on failure or with -s
    data = json.loads(out.with_suffix(".json").read_text())
    measured = data["systems"]
    assert "taskmill-sqlite" in measured
    for key in keys:
        assert key in measured or f"SKIP {key}: skipped" in proc.stderr, key
    failed = [c for c in data["checks"] if not c["ok"]]
    assert not failed, failed
    for key in measured:
        ran = {c["scenario"] for c in data["checks"] if c["system"] == key and c["ok"]}
        assert ran == SCENARIOS, (key, ran)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = out.read_text()
    assert "| taskmill " in table
    assert "each job ran once" in table
