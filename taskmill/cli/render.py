"""How jobs, logs and stats look in a terminal (Rich), and the live view of a running job."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..errors import JobNotFound
from ..job import STATES, Job, JobState, LogRecord
from ..mill import Mill

STATE_STYLE = {
    JobState.SCHEDULED: "cyan", JobState.QUEUED: "blue", JobState.RUNNING: "yellow",
    JobState.SUCCEEDED: "green", JobState.FAILED: "red", JobState.CANCELLED: "magenta",
}
LEVEL_STYLE = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}


def state_text(state: JobState | str) -> Text:
    state = JobState(state)
    return Text(state.value, style=STATE_STYLE[state])


def duration(secs: float | None) -> str:
    """Seconds as a short duration: 250ms, 5s, 1h30m, 1d."""
    if secs is None:
        return "-"
    if secs < 1 and secs != int(secs):
        return f"{round(secs * 1000)}ms"
    if secs < 60 and secs != int(secs):
        return f"{secs:.1f}s"
    rest = round(secs)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def when(value: datetime | None, now: datetime | None = None) -> str:
    """A time as `2025-06-01 12:00:03 UTC (5s ago)`."""
    if value is None:
        return "-"
    now = now or datetime.now(UTC)
    delta = (value - now).total_seconds()
    relative = f"in {duration(round(delta))}" if delta >= 1 else f"{duration(round(-delta))} ago"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({relative})"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "-"
    secs = ((now or datetime.now(UTC)) - value).total_seconds()
    return f"{duration(round(secs))} ago" if secs >= 0 else f"in {duration(round(-secs))}"


def retry_text(policy: dict[str, Any]) -> str:
    if "steps" in policy:
        return ", ".join(f"{tries} x {duration(interval)}" for tries, interval in policy["steps"])
    count = int(policy.get("backoff", 0))
    return f"{count} (backoff)" if count else "none"


def compact(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def arguments(job: Job) -> str:
    parts = [compact(a, 30) for a in job.args]
    parts += [f"{k}={compact(v, 30)}" for k, v in job.kwargs.items()]
    return ", ".join(parts)


def jobs_table(jobs: Sequence[Job]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name, justify in (("ID", "right"), ("TASK", "left"), ("QUEUE", "left"), ("STATE", "left"),
                          ("PROGRESS", "right"), ("TRIES", "right"), ("CREATED", "left"),
                          ("TITLE / ARGS", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "TITLE / ARGS")  # type: ignore[arg-type]
    now = datetime.now(UTC)
    for job in jobs:
        label = job.title or arguments(job)
        if job.owner:
            label = f"{label} [{job.owner}]" if label else f"[{job.owner}]"
        table.add_row(Text(job.id), Text(job.task), Text(job.queue), state_text(job.state),
                      f"{job.progress:.0f}%", f"{job.attempts}/{job.max_attempts}",
                      ago(job.created_at, now), Text(label, overflow="ellipsis"))
    return table


def job_detail(job: Job) -> Group:
    """Every field of a job, then its result or its error with the traceback."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    now = datetime.now(UTC)
    progress = f"{job.progress:.0f}%" + (f"  {job.progress_message}" if job.progress_message else "")
    rows: list[tuple[str, Any]] = [
        ("id", job.id), ("task", job.task), ("state", state_text(job.state)), ("queue", job.queue),
        ("priority", str(job.priority)), ("title", job.title), ("owner", job.owner),
        ("parent", job.parent), ("args", compact(job.args, 400) if job.args else None),
        ("kwargs", compact(job.kwargs, 400) if job.kwargs else None), ("progress", progress),
        ("attempts", f"{job.attempts} of {job.max_attempts} ({job.attempts_left} left), retry: "
                     f"{retry_text(job.retry)}"),
        ("iterations", str(job.iterations) if job.iterations > 1 else None),
        ("created", when(job.created_at, now)), ("scheduled", when(job.scheduled_at, now)),
        ("started", when(job.started_at, now) if job.started_at else None),
        ("finished", when(job.finished_at, now) if job.finished_at else None),
        ("timeout", duration(job.timeout) if job.timeout else None),
        ("worker", job.worker if job.state is JobState.RUNNING else None),
        ("result_url", job.result_url), ("return_url", job.return_url),
        ("cancel", ("requested: " if job.cancel_requested and not job.finished else "")
         + (job.cancel_reason or "") if job.cancel_requested or job.cancel_reason else None),
    ]
    for name, value in rows:
        if value is not None and value != "":
            grid.add_row(name, value if isinstance(value, Text) else Text(str(value)))
    parts: list[Any] = [grid]
    if job.state is JobState.SUCCEEDED or job.result is not None:
        parts += [Text("\nresult", style="bold"),
                  Text(json.dumps(job.result, indent=2, ensure_ascii=False))]
    if job.error is not None:
        label = "error" if job.state is JobState.FAILED else "last error"
        parts.append(Text(f"\n{label}: ", style="bold red") + Text(f"{job.error.type}: "
                                                                   f"{job.error.message}"))
        if job.error.traceback:
            parts.append(Text(job.error.traceback.rstrip(), style="dim"))
    return Group(*parts)


def log_line(record: LogRecord) -> Text:
    text = Text(f"{record.at.astimezone(UTC):%H:%M:%S} ", style="dim")
    text.append(f"{record.level:<7} ", style=LEVEL_STYLE.get(record.level, ""))
    text.append(f"#{record.attempt} ", style="dim")
    text.append(record.message)
    return text


def stats_table(stats: dict[str, dict[str, int]], paused: Iterable[str] = ()) -> Table:
    paused = set(paused)
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("QUEUE", no_wrap=True)
    for state in STATES:
        table.add_column(state.value.upper(), justify="right", style=STATE_STYLE[state])
    totals = dict.fromkeys((s.value for s in STATES), 0)
    for queue, counts in stats.items():
        label = Text(queue) + (Text(" (paused)", style="bold yellow") if queue in paused else "")
        table.add_row(label, *(str(counts.get(s.value, 0)) for s in STATES))
        for s in STATES:
            totals[s.value] += counts.get(s.value, 0)
    if len(stats) > 1:
        table.add_row(Text("all", style="bold"), *(str(totals[s.value]) for s in STATES))
    return table


def follow(mill: Mill, job_id: str, out: Console, *, timeout: float | None = None,
           logs: bool = True, poll: float = 0.25) -> Job:
    """Show a job's live progress bar (and its log lines as they come) until it is terminal.
    `TimeoutError` if it is not terminal within `timeout` seconds."""
    job = mill.get(job_id)
    if job is None:
        raise JobNotFound(job_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    columns = (TextColumn("{task.fields[label]}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[state]}"), TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=out, transient=False) as bar:
        task = bar.add_task("", total=100, label=f"job {job.id} {job.task}", state="")
        while True:
            if logs:
                records = mill.logs(job.id)
                for record in records[seen:]:
                    bar.console.print(log_line(record))
                seen = len(records)
            style = STATE_STYLE[job.state]
            bar.update(task, completed=job.progress, state=f"[{style}]{job.state.value}[/]",
                       description=Text(job.progress_message or "").markup)
            if job.finished:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job.id} is still {job.state.value} after "
                                   f"{duration(timeout)}")
            time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))
            fresh = mill.get(job.id)
            if fresh is None:
                raise JobNotFound(job.id)
            job = fresh
    return job


def outcome_line(job: Job) -> Text:
    """One line on how a finished job ended."""
    text = Text(f"job {job.id} ({job.task}) ") + state_text(job.state)
    if job.state is JobState.FAILED and job.error is not None:
        text.append(f": {job.error.type}: {job.error.message}")
    elif job.state is JobState.CANCELLED and job.cancel_reason:
        text.append(f": {job.cancel_reason}")
    elif job.state is JobState.SUCCEEDED and job.result is not None:
        text.append(f": {compact(job.result, 120)}")
    return text
