"""The worker process of the benchmark: `python bench/worker.py URL MODE OUT [CONCURRENCY]`.

It registers the no-op task, runs a real taskmill worker in its main thread, and writes what ran
to OUT as JSON: `{"runs": [[job_id, start_time], ...], "t_start": ..., "t_last": ...}`.

MODE `drain`: `run(burst=True)` over the jobs already queued; `t_start` is taken just before the
worker starts (after imports), `t_last` when the last job's completion was committed.
MODE `serve`: `run()` until SIGTERM, as an idle worker waiting for jobs (the latency scenario).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from taskmill import Job, Mill

RUNS: list[tuple[str, float]] = []


def make_mill(url: str) -> Mill:
    """A Mill with the benchmark's one task, `noop`, which records its job id and start time."""
    mill = Mill(url)

    @mill.task(retry=0)
    def noop(ctx: Any) -> None:
        RUNS.append((ctx.job_id, time.time()))

    return mill


def main(argv: list[str]) -> int:
    url, mode, out = argv[0], argv[1], argv[2]
    concurrency = int(argv[3]) if len(argv) > 3 else 8
    mill = make_mill(url)
    last = [0.0]

    def on_event(event: str, job: Job) -> None:
        if event == "succeeded":
            last[0] = time.time()

    mill.on_event(on_event)
    worker = mill.worker(queues="*", concurrency=concurrency, poll="1s")
    mill.backend  # noqa: B018 - open the store before the clock starts, as a running worker has
    t_start = time.time()
    worker.run(burst=(mode == "drain"))
    mill.close()
    with open(out, "w") as f:
        json.dump({"runs": RUNS, "t_start": t_start, "t_last": last[0], "counts": worker.counts}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
