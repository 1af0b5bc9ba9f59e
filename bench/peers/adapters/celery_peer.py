"""Celery on Redis: `celery worker -P threads -c N` (prefork for CPU-bound work), no result backend,
a key prefix of its own (kombu's `global_keyprefix`) and a queue named after the measurement."""

from __future__ import annotations

from typing import Any

from celery import Celery

from bench.peers.adapters import SyncClient
from bench.peers.common import CONFIG, run_job

app = Celery("bench_peers", broker=CONFIG.url or "memory://", set_as_current=True)
app.conf.update(
    broker_transport_options={"global_keyprefix": f"{CONFIG.namespace}:"},
    broker_connection_retry_on_startup=True,
    task_default_queue=CONFIG.namespace,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)


@app.task(name="job")
def job(index: int, kind: str) -> None:
    run_job(index, kind)


class CeleryClient(SyncClient):
    def one(self, index: int, kind: str) -> None:
        job.apply_async((index, kind))

    def close(self) -> None:
        app.close()


def client() -> Any:
    return CeleryClient()
