"""Dramatiq on Redis: `dramatiq MODULE --processes 1 --threads N` (2 processes of 1 thread for
CPU-bound work), its Redis namespace and queue named after the measurement, no retries."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.peers.adapters import SyncClient
from bench.peers.common import CONFIG, run_job

broker = RedisBroker(url=CONFIG.url or "redis://127.0.0.1:6379/15", namespace=CONFIG.namespace)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="job", queue_name=CONFIG.namespace, max_retries=0)
def job(index: int, kind: str) -> None:
    run_job(index, kind)


class DramatiqClient(SyncClient):
    def one(self, index: int, kind: str) -> None:
        job.send(index, kind)

    def close(self) -> None:
        broker.close()


def client() -> Any:
    return DramatiqClient()
