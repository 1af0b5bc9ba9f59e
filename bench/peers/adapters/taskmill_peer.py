"""taskmill: sync jobs on the worker's thread pool, the I/O-bound job `async def` on its event loop.

Worker: `python -m bench.peers.adapters.taskmill_peer --concurrency N`, which is
`mill.worker(concurrency=N).run()` (or, with `--cli`, `taskmill worker --app ...:mill`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from bench.peers.adapters import SyncClient
from bench.peers.common import CONFIG, run_job, run_job_async
from taskmill import Mill

mill = Mill(CONFIG.url or "memory://")


@mill.task(retry=0)
def job(ctx: Any, index: int, kind: str) -> None:
    run_job(index, kind)


@mill.task(retry=0)
async def ajob(ctx: Any, index: int, kind: str) -> None:
    await run_job_async(index, kind)


def task_name(kind: str) -> str:
    return "ajob" if kind == "sleep" else "job"


class TaskmillClient(SyncClient):
    bulk = True

    def prepare(self) -> None:
        mill.backend  # noqa: B018 - open the store: creates the tables before a worker starts

    def one(self, index: int, kind: str) -> None:
        mill.enqueue(task_name(kind), args=[index, kind])

    def enqueue_bulk(self, items: Sequence[int], kind: str) -> None:
        name = task_name(kind)
        mill.enqueue_many([{"task": name, "args": [index, kind]} for index in items])

    def close(self) -> None:
        mill.close()


def client() -> TaskmillClient:
    return TaskmillClient()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    mill.worker(queues="*", concurrency=args.concurrency).run()
    mill.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
