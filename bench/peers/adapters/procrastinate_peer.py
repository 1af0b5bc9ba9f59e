"""Procrastinate on PostgreSQL: `procrastinate --app MODULE.app worker --concurrency N`, its schema
applied in the measurement's own PostgreSQL schema (the connections' search_path), LISTEN/NOTIFY
on (its default). Jobs are `async def`; bulk enqueue is `batch_defer_async`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from procrastinate import App, PsycopgConnector

from bench.peers.adapters import AsyncClient
from bench.peers.common import CONFIG, PG_DSN, run_job_async

app = App(connector=PsycopgConnector(conninfo=CONFIG.url or PG_DSN,
                                     kwargs={"options": f"-c search_path={CONFIG.namespace}"}))


@app.task(name="job", queue=CONFIG.namespace)
async def job(index: int, kind: str) -> None:
    await run_job_async(index, kind)


class ProcrastinateClient(AsyncClient):
    bulk = True

    async def open(self) -> None:
        await app.open_async()

    def prepare(self) -> None:
        self.run(app.schema_manager.apply_schema_async())

    async def one(self, index: int, kind: str) -> None:
        await job.defer_async(index=index, kind=kind)

    async def many(self, items: Sequence[int], kind: str) -> None:
        specs: list[dict[str, Any]] = [{"index": index, "kind": kind} for index in items]
        await job.batch_defer_async(*specs)

    async def aclose(self) -> None:
        await app.close_async()


def client() -> Any:
    return ProcrastinateClient()
