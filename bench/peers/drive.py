"""The client side of one measurement, in a process of its own:
`python -m bench.peers.drive MODULE OUT PHASE [ARGS...]`.

The adapter MODULE reads its namespace and store from the environment (see common.Config), so a
fresh process per measurement gives each one a clean app. Results go to OUT as JSON (libraries
may print to stdout).

- `prepare`: create what the store needs (tables, schema) before a worker starts.
- `fill ONE BULK KIND`: enqueue jobs 0..ONE-1 one call each (timed), then ONE..ONE+BULK-1 in one
  bulk call (timed) where the library has one, else one call each (not timed).
- `latency SAMPLES`: with a worker already started: one warm-up job (index SAMPLES), then each
  sample enqueued once the previous one has run and a random 10-30 ms later, so the worker is
  idle each time; the time just before each enqueue call is written out.
"""

from __future__ import annotations

import importlib
import json
import random
import sys
import time
from typing import Any

from bench.peers.common import CONFIG, wait_count

WARM_TIMEOUT = 90.0  # the worker's start-up, under load
SAMPLE_TIMEOUT = 15.0


def main(argv: list[str]) -> int:
    module, out, phase, *args = argv
    adapter = importlib.import_module(module)
    client = adapter.client()
    result: dict[str, Any] = {"phase": phase}
    try:
        if phase == "prepare":
            client.prepare()
        elif phase == "fill":
            one, bulk, kind = int(args[0]), int(args[1]), args[2]
            t0 = time.perf_counter()
            client.enqueue_each(range(one), kind)
            elapsed = time.perf_counter() - t0
            result["one"] = one / elapsed if one else None
            items = range(one, one + bulk)
            if client.bulk and bulk:
                t0 = time.perf_counter()
                client.enqueue_bulk(items, kind)
                result["bulk"] = bulk / (time.perf_counter() - t0)
            else:
                client.enqueue_each(items, kind)
                result["bulk"] = None
        elif phase == "latency":
            samples = int(args[0])
            client.enqueue_each([samples], "noop")
            if not wait_count(CONFIG.records, 1, WARM_TIMEOUT, poll=0.01):
                result["error"] = f"the warm-up job did not run within {WARM_TIMEOUT:.0f} s"
            else:
                stamps: list[float] = []
                rng = random.Random(7)
                for index in range(samples):
                    time.sleep(rng.uniform(0.010, 0.030))
                    client.enqueue_each([index], "noop", stamps)
                    if not wait_count(CONFIG.records, index + 2, SAMPLE_TIMEOUT):
                        result["error"] = f"sample {index} did not run within {SAMPLE_TIMEOUT:.0f} s"
                        break
                result["stamps"] = stamps
        else:
            raise SystemExit(f"unknown phase {phase!r}")
    finally:
        client.close()
    with open(out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
