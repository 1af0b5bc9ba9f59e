"""Commands on jobs: enqueue, ls, show, wait, logs, cancel, retry, rm, purge."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click
from rich.text import Text

from ..errors import JobNotFound
from ..job import STATES, JobState
from .common import Env, complete_task, console, echo_json, parse_json, uses_mill
from .render import follow, job_detail, jobs_table, log_line, outcome_line, state_text

STATE_NAMES = [s.value for s in STATES]


def _exit_by_state(job: Any) -> None:
    """Exit 0 only if the job succeeded; otherwise one line on stderr and exit 1."""
    if job.state is not JobState.SUCCEEDED:
        raise click.ClickException(outcome_line(job).plain)


def _states(values: tuple[str, ...]) -> list[str] | None:
    return [part.strip() for value in values for part in value.split(",") if part.strip()] or None


def _pairs(values: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="-k")
        try:
            out[key.strip()] = parse_json(raw, "-k")
        except click.BadParameter:
            out[key.strip()] = raw
    return out


@click.command("enqueue", epilog="""\b
Examples:
  taskmill enqueue export_report -k rows=500 --title "Sales report" --wait
  taskmill enqueue cleanup_tmp_files --kwargs '{"max_age_days": 2}' --delay 5m --unique
  taskmill enqueue import_products -k path=data/products.csv -q   # prints only the id
""")
@click.argument("task", shell_complete=complete_task)
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option("-k", "pairs", multiple=True, metavar="KEY=VALUE",
              help="One keyword argument (repeatable); the value is JSON if it parses, else text.")
@click.option("--args", "args_json", metavar="JSON", help="Positional arguments as a JSON list.")
@click.option("--queue", help="Queue (default: the task's).")
@click.option("--delay", metavar="DURATION", help="Run no sooner than this from now: 30s, 5m, 1h30m.")
@click.option("--at", "at", metavar="DATETIME",
              help="Run no sooner than this time, ISO 8601 with a zone: 2030-01-01T09:00:00+01:00.")
@click.option("--priority", type=int, help="Higher runs first (default: the task's, 0).")
@click.option("--retry", "retry_json", metavar="N|JSON",
              help='Retries: a number, or [[tries, "interval"], ...] steps.')
@click.option("--owner", help="Who the job belongs to, e.g. user:42.")
@click.option("--title", help="A title to show in lists and the dashboard.")
@click.option("--parent", metavar="ID", help="The id of a parent job.")
@click.option("--result-url", help="Where the progress page sends the browser on success ({id} is replaced).")
@click.option("--return-url", help="Where the progress page links back to.")
@click.option("--unique", is_flag=True,
              help="If the same job (task, arguments, queue, owner) is waiting, return it instead.")
@click.option("--reschedule", is_flag=True,
              help="Like --unique, but move the waiting job's time to this one's.")
@click.option("--wait", "wait_", is_flag=True,
              help="Follow the job until it ends; exit 0 only if it succeeded.")
@click.option("--timeout", type=float, metavar="SECONDS", help="With --wait: give up after this long.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the job id.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@uses_mill
def enqueue(env: Env, task: str, kwargs_json: str | None, pairs: tuple[str, ...],
            args_json: str | None, queue: str | None, delay: str | None, at: str | None,
            priority: int | None, retry_json: str | None, owner: str | None, title: str | None,
            parent: str | None, result_url: str | None, return_url: str | None, unique: bool,
            reschedule: bool, wait_: bool, timeout: float | None, quiet: bool, as_json: bool) -> None:
    """Enqueue a job of TASK and print its id.

    Its arguments are checked against the task's input first: bad input is refused and nothing is
    stored."""
    kwargs = parse_json(kwargs_json, "--kwargs") if kwargs_json is not None else {}
    if not isinstance(kwargs, dict):
        raise click.BadParameter("must be a JSON object, such as '{\"rows\": 500}'", param_hint="--kwargs")
    kwargs.update(_pairs(pairs))
    args = parse_json(args_json, "--args") if args_json is not None else None
    if args is not None and not isinstance(args, list):
        raise click.BadParameter("must be a JSON list, such as '[1, 2]'", param_hint="--args")
    options: dict[str, Any] = {}
    if at is not None:
        try:
            options["at"] = datetime.fromisoformat(at)
        except ValueError:
            raise click.BadParameter(f"{at!r} is not an ISO 8601 time such as 2030-01-01T09:00:00Z",
                                     param_hint="--at") from None
    if retry_json is not None:
        retry = parse_json(retry_json, "--retry")
        options["retry"] = [tuple(step) if isinstance(step, list) else step for step in retry] \
            if isinstance(retry, list) else retry
    given = {"queue": queue, "delay": delay, "priority": priority, "owner": owner, "title": title,
             "parent": parent, "result_url": result_url, "return_url": return_url}
    options.update({k: v for k, v in given.items() if v is not None})
    if unique or reschedule:
        options["unique"] = "reschedule" if reschedule else True
    mill = env.require_app("enqueue")
    job = mill.enqueue(task, args=args, kwargs=kwargs, **options)
    out = console()
    if as_json and not wait_:
        echo_json(job.to_json())
    elif quiet:
        click.echo(job.id)
    else:
        line = Text(f"enqueued job {job.id} ({job.task} on {job.queue}, ") + state_text(job.state)
        if job.state is JobState.SCHEDULED:
            line.append(f" until {job.scheduled_at:%Y-%m-%d %H:%M:%S} UTC")
        out.print(line + Text(")"))
    if wait_:
        final = follow(mill, job.id, console(stderr=True) if quiet or as_json else out, timeout=timeout)
        if as_json:
            echo_json(final.to_json())
        elif not quiet:
            out.print(outcome_line(final))
        _exit_by_state(final)


@click.command("ls", epilog="""\b
Examples:
  taskmill ls --state failed --queue exports
  taskmill ls --state queued,scheduled --task cleanup_tmp_files --json
""")
@click.option("--state", "states", multiple=True, metavar="STATE[,STATE]",
              help=f"Only jobs in these states ({', '.join(STATE_NAMES)}); repeatable.")
@click.option("--queue", help="Only jobs of this queue.")
@click.option("--task", help="Only jobs of this task.")
@click.option("--owner", help="Only jobs of this owner.")
@click.option("--parent", metavar="ID", help="Only children of this job.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--after", metavar="CURSOR", help="The next page: the cursor a previous page printed.")
@click.option("--json", "as_json", is_flag=True, help='Print {"items": [...], "next": cursor}.')
@uses_mill
def ls(env: Env, states: tuple[str, ...], queue: str | None, task: str | None, owner: str | None,
       parent: str | None, limit: int, after: str | None, as_json: bool) -> None:
    """List jobs, newest first."""
    jobs, cursor = env.mill.page(_states(states), queue=queue, task=task, owner=owner, parent=parent,
                                 limit=limit, after=after)
    if as_json:
        echo_json({"items": [j.to_json() for j in jobs], "next": cursor})
        return
    out = console()
    if not jobs:
        out.print("no jobs" + (" match" if states or queue or task or owner or parent else ""))
        return
    out.print(jobs_table(jobs))
    if cursor:
        out.print(Text(f"more: taskmill ls --after {cursor} (same filters)", style="dim"))


@click.command("show", epilog="""\b
Examples:
  taskmill show 42
  taskmill show 42 --follow      # live progress bar and log lines; exit 0 only if it succeeded
""")
@click.argument("job_id", metavar="ID")
@click.option("--follow", "-f", "follow_", is_flag=True,
              help="Follow the job until it ends, then show it; exit 0 only if it succeeded.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@uses_mill
def show(env: Env, job_id: str, follow_: bool, as_json: bool) -> None:
    """Show a job: every field, its result or error.

    A failed job shows its error with the traceback; --follow shows a live progress bar and the
    log lines first."""
    mill = env.mill
    job = mill.get(job_id)
    if job is None:
        raise JobNotFound(job_id)
    out = console()
    if follow_:
        job = follow(mill, job_id, console(stderr=True) if as_json else out)
    if as_json:
        echo_json(job.to_json())
    else:
        out.print(job_detail(job))
    if follow_:
        _exit_by_state(job)


@click.command("wait", epilog="""\b
Exit code: 0 if the job succeeded; 1 if it failed, was cancelled, or is still
not finished after --timeout.
Example:
  taskmill wait 42 --timeout 60 && echo done
""")
@click.argument("job_id", metavar="ID")
@click.option("--timeout", type=float, metavar="SECONDS", help="Give up after this long (exit 1).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or log lines; only the outcome.")
@click.option("--json", "as_json", is_flag=True, help="Print the finished job as JSON.")
@uses_mill
def wait(env: Env, job_id: str, timeout: float | None, quiet: bool, as_json: bool) -> None:
    """Wait for a job to end; exit 0 if it succeeded.

    Shows a live progress bar and the log lines as they come (unless --quiet or --json)."""
    mill = env.mill
    out = console()
    if quiet or as_json:
        job = mill.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        job = job.wait(timeout=timeout)
    else:
        job = follow(mill, job_id, out, timeout=timeout)
    if as_json:
        echo_json(job.to_json())
    elif job.state is JobState.SUCCEEDED:
        out.print(outcome_line(job))
    _exit_by_state(job)


@click.command("logs", epilog="""\b
Examples:
  taskmill logs 42
  taskmill logs 42 --follow       # until the job ends
""")
@click.argument("job_id", metavar="ID")
@click.option("--follow", "-f", "follow_", is_flag=True,
              help="Print new lines as they come, until the job ends.")
@click.option("--limit", "-n", type=click.IntRange(1), help="Only the last N lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@uses_mill
def logs(env: Env, job_id: str, follow_: bool, limit: int | None, as_json: bool) -> None:
    """Print a job's log lines.

    Each line: time (UTC), level, #attempt, message."""
    mill = env.mill
    job = mill.get(job_id)
    if job is None:
        raise JobNotFound(job_id)
    records = mill.logs(job_id, limit)
    if as_json:
        echo_json([{"at": r.at, "level": r.level, "message": r.message, "attempt": r.attempt}
                   for r in records])
        return
    out = console()
    for record in records:
        out.print(log_line(record))
    if not follow_:
        if not records:
            console(stderr=True).print(f"job {job_id} has no log lines yet")
        return
    seen = len(mill.logs(job_id)) if limit else len(records)
    while not job.finished:
        time.sleep(0.25)
        fresh = mill.get(job_id)
        if fresh is None:
            raise JobNotFound(job_id)
        job = fresh
        new = mill.logs(job_id)
        for record in new[seen:]:
            out.print(log_line(record))
        seen = len(new)


@click.command("cancel", epilog="Example:\n  taskmill cancel 42 --reason 'wrong file'")
@click.argument("job_id", metavar="ID")
@click.option("--reason", help="Why; stored with the job.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@uses_mill
def cancel(env: Env, job_id: str, reason: str | None, as_json: bool) -> None:
    """Cancel a waiting or running job.

    A waiting (queued or scheduled) job never runs; a running one is asked to stop: its
    `ctx.cancelled` becomes true."""
    job = env.mill.cancel(job_id, reason)
    if as_json:
        echo_json(job.to_json())
    elif job.state is JobState.RUNNING:
        console().print(f"asked running job {job.id} ({job.task}) to stop; it ends when its code "
                        f"next checks ctx.cancelled")
    else:
        console().print(Text(f"job {job.id} ({job.task}) ") + state_text(job.state))


@click.command("retry", epilog="Example:\n  taskmill retry 42")
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@uses_mill
def retry(env: Env, job_id: str, as_json: bool) -> None:
    """Run a finished job again.

    A succeeded, failed or cancelled job is queued again with one more attempt; its attempts
    keep counting."""
    job = env.mill.retry(job_id)
    if as_json:
        echo_json(job.to_json())
    else:
        console().print(Text(f"job {job.id} ({job.task}) ") + state_text(job.state)
                        + Text(f" again: attempt {job.attempts + 1} of {job.max_attempts}"))


@click.command("rm", epilog="Example:\n  taskmill rm 42")
@click.argument("job_id", metavar="ID")
@uses_mill
def rm(env: Env, job_id: str) -> None:
    """Delete a job and its logs.

    A running job cannot be deleted: cancel it first."""
    if not env.mill.delete(job_id):
        raise JobNotFound(job_id)
    console().print(f"deleted job {job_id}")


@click.command("purge", epilog="""\b
Examples:
  taskmill purge --state failed --state cancelled --yes
  taskmill purge --yes            # every job that is not running
""")
@click.option("--state", "states", multiple=True, metavar="STATE[,STATE]",
              help="Only jobs in these states (default: every state but running); repeatable.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@uses_mill
def purge(env: Env, states: tuple[str, ...], yes: bool) -> None:
    """Delete many jobs at once.

    Running jobs are never deleted. Asks first, unless --yes."""
    mill = env.mill
    wanted = _states(states)
    what = " or ".join(wanted) if wanted else "finished and waiting"
    if not yes:
        counts = mill.stats()
        chosen = wanted or [s.value for s in STATES if s is not JobState.RUNNING]
        total = sum(c.get(s, 0) for c in counts.values() for s in chosen)
        if total == 0:
            console().print(f"no {what} jobs to delete")
            return
        click.confirm(f"Delete {total} {what} job(s)?", abort=True, err=True)
    count = mill.delete_all(wanted)
    console().print(f"deleted {count} {what} job(s)")
