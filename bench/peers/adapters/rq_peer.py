"""RQ: one `rq worker` process runs one job at a time (`SimpleWorker`: in the worker process; the
default worker forks a work horse per job); `rq worker-pool -n N` for parallel work. RQ's keys
have a fixed `rq:` prefix, so it runs alone in Redis db 15 (run.py holds a lock meanwhile)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis import Redis
from rq import Queue

from bench.peers.adapters import SyncClient
from bench.peers.common import CONFIG, run_job


def job(index: int, kind: str) -> None:
    run_job(index, kind)


class RQClient(SyncClient):
    bulk = True

    def __init__(self) -> None:
        self.redis = Redis.from_url(CONFIG.url)
        self.queue = Queue(CONFIG.namespace, connection=self.redis)

    def one(self, index: int, kind: str) -> None:
        self.queue.enqueue(job, index, kind)

    def enqueue_bulk(self, items: Sequence[int], kind: str) -> None:
        self.queue.enqueue_many([Queue.prepare_data(job, (index, kind)) for index in items])

    def close(self) -> None:
        self.redis.close()


def client() -> Any:
    return RQClient()
