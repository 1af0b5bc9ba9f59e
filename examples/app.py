"""The example app: the seed scenarios in miniature, each a few seconds long.

    taskmill run --app examples.app:mill      # worker + dashboard; seed(mill) enqueues demo jobs
    taskmill enqueue export_report --app examples.app:mill -k rows=300 --wait

- `export_report`: reports progress, logs, honours cancel; enqueued with a result URL.
- `cleanup_tmp_files`: a retry schedule of 1 x 5m, 1 x 20m, 3 x 1h, 1 x 1d; enqueued unique.
- `send_digest`: periodic, every minute.
- `flaky_fetch`: fails its first tries and is retried after 2 seconds.
- `ImportProducts`: a `Task` class with a pydantic input model, checked at enqueue.
- `migrate_users`: a resumable batch migration that answers `Continue` until done.
"""

from __future__ import annotations

import random
import time
from typing import Any

from pydantic import BaseModel, Field

from taskmill import Cancelled, Context, Continue, Mill, Task

mill = Mill()  # TASKMILL_URL, else sqlite:///taskmill.db

STEP = 0.3  # seconds per simulated unit of work: keeps every demo job to a few seconds


@mill.task(queue="exports", retry=2, timeout="2m")
def export_report(ctx: Context, rows: int = 500, format: str = "csv") -> dict[str, Any]:
    """Export a report: progress in steps of 10%, a log line per step, cancellable."""
    ctx.log.info("exporting %d rows as %s", rows, format)
    for step in range(1, 11):
        if ctx.cancelled:
            ctx.log.warning("cancelled after %d%%", (step - 1) * 10)
            raise Cancelled()
        time.sleep(STEP)
        ctx.progress(step * 10, f"{rows * step // 10} of {rows} rows")
        if step % 3 == 0:
            ctx.log.info("wrote %d rows", rows * step // 10)
    return {"rows": rows, "file": f"report-{ctx.job_id}.{format}"}


@mill.task(queue="maintenance", retry=[(1, "5m"), (1, "20m"), (3, "1h"), (1, "1d")])
def cleanup_tmp_files(ctx: Context, max_age_days: int = 1) -> dict[str, Any]:
    """Delete temporary files older than `max_age_days` (simulated: it deletes nothing)."""
    total = 1000
    for done in range(0, total + 1, 250):
        if ctx.cancelled:
            raise Cancelled()
        ctx.progress(100 * done / total, f"deleted {done} of {total}")
        time.sleep(STEP)
    ctx.log.info("deleted %d files older than %d day(s)", total, max_age_days)
    return {"success": True, "filecount": total}


@mill.task(queue="maintenance", every="1m", retry=0)
def send_digest(ctx: Context) -> dict[str, int]:
    """Every minute: send the digest to the subscribers (simulated)."""
    subscribers = random.randint(2, 5)
    ctx.log.info("sent the digest to %d subscribers", subscribers)
    return {"sent": subscribers}


@mill.task(retry=[(3, "2s")])
def flaky_fetch(ctx: Context, url: str, fail_times: int = 1) -> dict[str, Any]:
    """Fetch a URL (simulated) that fails its first `fail_times` attempts."""
    ctx.log.info("attempt %d: fetching %s", ctx.attempt, url)
    time.sleep(STEP)
    if ctx.attempt <= fail_times:
        raise ConnectionError(f"{url} did not answer (attempt {ctx.attempt})")
    return {"url": url, "status": 200, "attempts": ctx.attempt}


class ImportInput(BaseModel):
    """What an import needs; checked when the job is enqueued."""

    path: str = Field(min_length=1, description="The CSV file to import")
    batch_size: int = Field(100, ge=1, le=10_000, description="Rows per batch")
    dry_run: bool = Field(False, description="Check the rows without saving them")


@mill.task(queue="imports", retry=3)
class ImportProducts(Task):
    """Import products from a CSV file (simulated: 600 rows)."""

    def before_enqueue(self, input: ImportInput) -> None:
        if not input.path.endswith(".csv"):
            raise ValueError("only .csv files can be imported")

    def run(self, ctx: Context, input: ImportInput) -> dict[str, Any]:
        rows = 600
        for start in range(0, rows, input.batch_size):
            if ctx.cancelled:
                raise Cancelled()
            time.sleep(STEP)
            done = min(start + input.batch_size, rows)
            ctx.progress(100 * done / rows, f"{done} of {rows} rows")
        ctx.log.info("%s %d products from %s", "checked" if input.dry_run else "imported", rows,
                     input.path)
        return {"imported": 0 if input.dry_run else rows, "path": input.path}

    def on_done(self, ctx: Context, result: Any) -> None:
        pass  # e.g. tell the person who started the import


@mill.task(queue="maintenance", max_iterations=100, timeout="1m")
def migrate_users(ctx: Context, total: int = 1000, batch: int = 250) -> Any:
    """Migrate users in batches; each iteration does one batch and answers Continue with where
    it got to, so a stop or a crash resumes from there instead of starting over."""
    offset = ctx.state or 0
    time.sleep(STEP)
    upto = min(offset + batch, total)
    ctx.progress(100 * upto / total, f"migrated {upto} of {total} users")
    ctx.log.info("iteration %d: users %d to %d migrated", ctx.iteration, offset, upto)
    if upto < total:
        return Continue(state=upto)
    return {"migrated": total, "iterations": ctx.iteration}


def seed(mill: Mill) -> None:
    """A few demo jobs so a new user sees things move; safe to run again (they are unique)."""
    export_report.with_options(title="Sales report", owner="user:42", unique=True,
                               result_url="/jobs/{id}", return_url="/").enqueue(rows=500)
    cleanup_tmp_files.with_options(unique=True).enqueue(max_age_days=2)
    flaky_fetch.with_options(unique=True).enqueue("https://example.com/feed", fail_times=1)
    flaky_fetch.with_options(unique=True, title="A feed that is down").enqueue(
        "https://example.com/down", fail_times=9)
    ImportProducts.with_options(unique=True).enqueue(path="products.csv", batch_size=100)
    migrate_users.with_options(unique=True).enqueue(total=1000, batch=250)
    export_report.with_options(title="Tomorrow's report, in 30s", unique=True).enqueue_in(
        "30s", rows=100)
