"""The tasks the web tests run: quick ones, slow ones that report progress, failing ones, a class
task with an input model, and a periodic one."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from taskmill import Cancelled, Mill, Task
from taskmill.worker import Context


class ExportInput(BaseModel):
    """What to export."""

    name: str = Field(min_length=1, description="a name for the file")
    rows: int = Field(10, ge=1, le=1000)
    format: Literal["csv", "json"] = "csv"
    gzip: bool = False


def build_mill(url: str) -> Mill:
    mill = Mill(url)

    @mill.task(retry=0)
    def add(ctx: Context, a: int, b: int = 2) -> int:
        """Add two numbers."""
        ctx.log.info("adding %d and %d", a, b)
        return a + b

    @mill.task(retry=0)
    def slow(ctx: Context, steps: int = 5, pause: float = 0.2) -> dict[str, int]:
        """Count to `steps`, a step every `pause` seconds, reporting progress."""
        for step in range(1, steps + 1):
            if ctx.cancelled:
                raise Cancelled()
            time.sleep(pause)
            ctx.progress(100 * step / steps, f"step {step} of {steps}")
            ctx.log.info("did step %d of %d", step, steps)
        return {"steps": steps}

    @mill.task(retry=0)
    def boom(ctx: Context, message: str = "it broke") -> None:
        """Fail at once."""
        ctx.log.error("about to fail")
        raise ValueError(message)

    @mill.task(retry=0)
    def parent_of_two(ctx: Context) -> str:
        ctx.enqueue("add", kwargs={"a": 1})
        ctx.enqueue("add", kwargs={"a": 2})
        return "spawned"

    @mill.task(retry=0)
    class Export(Task):
        """Export rows to a file."""

        def run(self, ctx: Context, input: ExportInput) -> dict[str, object]:
            for done in range(0, input.rows + 1, max(1, input.rows // 4)):
                ctx.progress(100 * done / input.rows, f"{done} rows")
            ctx.log.info("exported %s", input.name)
            return {"file": f"{input.name}.{input.format}", "rows": input.rows}

    @mill.task(every="1h", queue="maintenance")
    def tick(ctx: Context) -> None:
        """Runs every hour."""

    return mill
