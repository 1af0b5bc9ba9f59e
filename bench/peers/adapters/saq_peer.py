"""SAQ (asyncio) on Redis: `saq MODULE.settings --workers 1` with `concurrency` = the slots
(`--workers 2` processes for CPU-bound work); the queue is named after the measurement."""

from __future__ import annotations

from typing import Any

from saq import Queue

from bench.peers.adapters import AsyncClient
from bench.peers.common import CONFIG, run_job_async

queue = Queue.from_url(CONFIG.url or "redis://127.0.0.1:6379/15", name=CONFIG.namespace)


async def job(ctx: Any, *, index: int, kind: str) -> None:
    await run_job_async(index, kind)


settings = {"queue": queue, "functions": [("job", job)], "concurrency": CONFIG.slots}


class SaqClient(AsyncClient):
    async def open(self) -> None:
        await queue.connect()

    async def one(self, index: int, kind: str) -> None:
        await queue.enqueue("job", index=index, kind=kind)

    async def aclose(self) -> None:
        await queue.disconnect()


def client() -> Any:
    return SaqClient()
