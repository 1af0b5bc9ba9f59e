"""Huey on Redis (`RedisHuey`, blocking pops) or on SQLite (`SqliteHuey`, its defaults: WAL and
SQLite's default synchronous=FULL): `huey_consumer MODULE.huey -w N -k thread` (`-k process` for
CPU-bound work). The huey name (its key prefix) is the measurement's namespace."""

from __future__ import annotations

from typing import Any

from huey import RedisHuey, SqliteHuey

from bench.peers.adapters import SyncClient
from bench.peers.common import CONFIG, run_job

if CONFIG.url.startswith("redis"):
    huey: Any = RedisHuey(name=CONFIG.namespace, url=CONFIG.url, results=False)
else:
    huey = SqliteHuey(name=CONFIG.namespace, filename=CONFIG.url or ":memory:", results=False)


@huey.task(retries=0, name="job")
def job(index: int, kind: str) -> None:
    run_job(index, kind)


class HueyClient(SyncClient):
    def one(self, index: int, kind: str) -> None:
        job(index, kind)


def client() -> Any:
    return HueyClient()
