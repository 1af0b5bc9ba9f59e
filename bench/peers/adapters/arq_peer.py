"""arq (asyncio, Redis): `arq MODULE.WorkerSettings` with `max_jobs` = the slots; its other
settings are arq's defaults (poll_delay 0.5 s, results kept 1 h). arq's job keys have a fixed
`arq:` prefix, so it runs alone in Redis db 15 (run.py holds a lock meanwhile)."""

from __future__ import annotations

from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import func

from bench.peers.adapters import AsyncClient
from bench.peers.common import CONFIG, run_job_async

REDIS = RedisSettings.from_dsn(CONFIG.url or "redis://127.0.0.1:6379/15")


async def job(ctx: dict[str, Any], index: int, kind: str) -> None:
    await run_job_async(index, kind)


class WorkerSettings:
    functions = [func(job, name="job", max_tries=1)]
    redis_settings = REDIS
    queue_name = CONFIG.namespace
    max_jobs = CONFIG.slots


class ArqClient(AsyncClient):
    pool: ArqRedis

    async def open(self) -> None:
        self.pool = await create_pool(REDIS, default_queue_name=CONFIG.namespace)

    async def one(self, index: int, kind: str) -> None:
        await self.pool.enqueue_job("job", index, kind)

    async def aclose(self) -> None:
        await self.pool.aclose()


def client() -> Any:
    return ArqClient()
