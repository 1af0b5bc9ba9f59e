"""One module per library. Each defines, at import and from the environment (`common.CONFIG`),
the objects its worker command loads (an app, a broker, settings), and `client()`, what the
driver enqueues with. The orchestrator (run.py) never imports these: the driver and the
library's own worker do, each in a process of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Client(Protocol):
    bulk: bool  # whether the library has a bulk enqueue (one call, one round trip or transaction)

    def prepare(self) -> None: ...
    def enqueue_each(self, items: Sequence[int], kind: str, stamps: list[float] | None = None) -> None: ...
    def enqueue_bulk(self, items: Sequence[int], kind: str) -> None: ...
    def close(self) -> None: ...


class SyncClient:
    """Helpers for a blocking client: `one(index, kind)` enqueues one job."""

    bulk = False

    def prepare(self) -> None:
        return None

    def one(self, index: int, kind: str) -> None:
        raise NotImplementedError

    def enqueue_each(self, items: Sequence[int], kind: str, stamps: list[float] | None = None) -> None:
        one = self.one
        if stamps is None:
            for index in items:
                one(index, kind)
            return
        for index in items:
            stamps.append(time.time())
            one(index, kind)

    def enqueue_bulk(self, items: Sequence[int], kind: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None


class AsyncClient:
    """Helpers for an asyncio client: one event loop for the driver's whole life, and the loops
    over jobs run inside it (so an enqueue costs the library's await, not a loop start)."""

    bulk = False

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.run(self.open())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def one(self, index: int, kind: str) -> None:
        raise NotImplementedError

    async def many(self, items: Sequence[int], kind: str) -> None:
        raise NotImplementedError

    def prepare(self) -> None:
        return None

    def enqueue_each(self, items: Sequence[int], kind: str, stamps: list[float] | None = None) -> None:
        async def each() -> None:
            for index in items:
                if stamps is not None:
                    stamps.append(time.time())
                await self.one(index, kind)

        self.run(each())

    def enqueue_bulk(self, items: Sequence[int], kind: str) -> None:
        self.run(self.many(items, kind))

    def close(self) -> None:
        self.run(self.aclose())
        self.loop.close()
