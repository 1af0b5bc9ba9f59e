"""Commands on the store and the app: stats, queues, periodic, tasks, migrate, new-task."""

from __future__ import annotations

import os
import re
import string
import time
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..errors import ConfigError
from .common import Env, complete_task, console, echo_json, uses_mill
from .render import duration, retry_text, stats_table, when


@click.command("stats", epilog="""\b
Examples:
  taskmill stats
  taskmill stats --watch --interval 2
""")
@click.option("--watch", "-w", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(0.1), default=1.0, show_default=True,
              metavar="SECONDS", help="With --watch: how often to refresh.")
@click.option("--json", "as_json", is_flag=True, help="Print {queue: {state: count}} as JSON.")
@uses_mill
def stats(env: Env, watch: bool, interval: float, as_json: bool) -> None:
    """Count jobs per queue and state."""
    mill = env.mill
    if as_json:
        echo_json(mill.stats())
        return
    if not watch:
        console().print(stats_table(mill.stats(), mill.paused_queues()))
        return
    out = console()
    try:
        if not out.is_terminal:  # piped: a snapshot per interval, for a log
            while True:
                out.print(stats_table(mill.stats(), mill.paused_queues()), "")
                out.file.flush()
                time.sleep(interval)
        with Live(stats_table(mill.stats(), mill.paused_queues()), console=out,
                  auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(stats_table(mill.stats(), mill.paused_queues()), refresh=True)
    except KeyboardInterrupt:
        return


@click.group("queues", invoke_without_command=True, epilog="""\b
Examples:
  taskmill queues
  taskmill queues pause exports     # workers claim nothing from it until resumed
  taskmill queues resume exports
""")
@click.option("--json", "as_json", is_flag=True, help="Print the queues as JSON.")
@uses_mill
def queues(env: Env, as_json: bool) -> None:
    """List, pause and resume queues.

    Without a subcommand: each queue, paused or active, its waiting and running jobs, and the
    app's tasks on it. A pause is kept in the store: it survives restarts."""
    if click.get_current_context().invoked_subcommand is not None:
        return
    mill = env.mill
    counts = mill.stats()
    paused = mill.paused_queues()
    tasks_of: dict[str, list[str]] = {}
    for definition in mill.registry.values():
        tasks_of.setdefault(definition.queue, []).append(definition.name)
    rows: list[dict[str, Any]] = [{"name": q, "paused": q in paused,
             "waiting": c.get("queued", 0) + c.get("scheduled", 0), "running": c.get("running", 0),
             "tasks": sorted(tasks_of.get(q, []))}
            for q, c in sorted({**{p: {} for p in paused}, **counts}.items())]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        console().print("no queues yet (a queue appears with its first job, or with --app)")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("QUEUE", "STATUS", "WAITING", "RUNNING", "TASKS"):
        table.add_column(name, justify="right" if name in ("WAITING", "RUNNING") else "left")
    for row in rows:
        status = Text("paused", style="bold yellow") if row["paused"] else Text("active", style="green")
        table.add_row(Text(row["name"]), status, str(row["waiting"]), str(row["running"]),
                      Text(", ".join(row["tasks"])))
    console().print(table)


@queues.command("pause", epilog="Example:\n  taskmill queues pause exports")
@click.argument("name")
@uses_mill
def queues_pause(env: Env, name: str) -> None:
    """Pause a queue: workers claim nothing from it until it is resumed (kept in the store)."""
    env.mill.pause_queue(name)
    console().print(f"queue {name} paused")


@queues.command("resume", epilog="Example:\n  taskmill queues resume exports")
@click.argument("name")
@uses_mill
def queues_resume(env: Env, name: str) -> None:
    """Resume a paused queue."""
    env.mill.resume_queue(name)
    console().print(f"queue {name} resumed")


def _schedule(info: dict[str, Any] | None) -> str:
    if not info:
        return "-"
    if "every" in info:
        return f"every {duration(info['every'])}"
    return f"cron {info['cron']}" + (f" ({info['tz']})" if info.get("tz", "UTC") != "UTC" else "")


@click.group("periodic", invoke_without_command=True, epilog="""\b
Examples:
  taskmill periodic --app myapp:mill
  taskmill periodic stop send_digest     # also removes its waiting jobs
  taskmill periodic start send_digest    # from its next slot on
""")
@click.option("--json", "as_json", is_flag=True, help="Print the periodic tasks as JSON.")
@uses_mill
def periodic(env: Env, as_json: bool) -> None:
    """List, stop and start periodic tasks.

    Without a subcommand: the same as `periodic ls`."""
    if click.get_current_context().invoked_subcommand is None:
        _periodic_list(env, as_json)


@periodic.command("ls", epilog="Example:\n  taskmill periodic ls --app myapp:mill")
@click.option("--json", "as_json", is_flag=True, help="Print the periodic tasks as JSON.")
@uses_mill
def periodic_ls(env: Env, as_json: bool) -> None:
    """List periodic tasks: schedule, on or off, last and next slot."""
    _periodic_list(env, as_json)


def _periodic_list(env: Env, as_json: bool) -> None:
    items = env.require_app("periodic").periodic()
    if as_json:
        echo_json(items)
        return
    if not items:
        console().print("no periodic tasks (give a task every= or cron=)")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("TASK", "SCHEDULE", "STATUS", "LAST SLOT", "NEXT SLOT"):
        table.add_column(name, no_wrap=True)
    for item in items:
        status = Text("on", style="green") if item["enabled"] else Text("stopped", style="yellow")
        table.add_row(Text(item["name"]), _schedule(item["schedule"]), status,
                      when(item["last_slot"]), when(item["next_slot"]) if item["enabled"] else "-")
    console().print(table)


@periodic.command("stop", epilog="Example:\n  taskmill periodic stop send_digest --app myapp:mill")
@click.argument("name", shell_complete=complete_task)
@uses_mill
def periodic_stop(env: Env, name: str) -> None:
    """Stop firing a periodic task; its waiting jobs are removed."""
    removed = env.require_app("periodic stop").stop_periodic(name)
    console().print(f"periodic task {name} stopped; {removed} waiting job(s) removed")


@periodic.command("start", epilog="Example:\n  taskmill periodic start send_digest --app myapp:mill")
@click.argument("name", shell_complete=complete_task)
@uses_mill
def periodic_start(env: Env, name: str) -> None:
    """Fire a stopped periodic task again, from its next slot on."""
    env.require_app("periodic start").start_periodic(name)
    console().print(f"periodic task {name} started")


def _inputs(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or ("|".join(p.get("type", "?") for p in prop.get("anyOf", [])) or "any")
        text = f"{name}: {kind}"
        if name not in required and "default" in prop:
            text += f" = {prop['default']!r}"
        parts.append(text)
    return ", ".join(parts)


@click.command("tasks", epilog="Example:\n  taskmill tasks --app myapp:mill")
@click.option("--json", "as_json", is_flag=True, help="Print the definitions (with input JSON Schema).")
@uses_mill
def tasks(env: Env, as_json: bool) -> None:
    """List the app's task definitions.

    Each with its queue, retries, timeout, periodic schedule and input."""
    items = env.require_app("tasks").tasks()
    if as_json:
        echo_json(items)
        return
    if not items:
        console().print("the app registers no tasks")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("TASK", "QUEUE", "RETRY", "TIMEOUT", "PERIODIC", "INPUT", "ABOUT"):
        table.add_column(name, no_wrap=name not in ("INPUT", "ABOUT"))
    for item in items:
        about = " ".join((item["doc"] or "").strip().split("\n\n")[0].split())
        table.add_row(Text(item["name"]), Text(item["queue"]), retry_text(item["retry"]),
                      duration(item["timeout"]) if item["timeout"] else "-",
                      _schedule(item["periodic"]), Text(_inputs(item["input_schema"])),
                      Text(about))
    console().print(table)


@click.command("migrate", epilog="Example:\n  taskmill migrate --url postgresql://localhost/app")
@uses_mill
def migrate(env: Env) -> None:
    """Create or upgrade the store's tables."""
    backend = env.mill.backend
    run = getattr(backend, "migrate", None)
    if callable(run):
        version = run()
        console().print(f"the store {env.mill.url} is up to date"
                        + (f" (schema version {version})" if isinstance(version, int) else ""))
    else:
        console().print(f"nothing to do: {type(backend).__name__} brings its store up to date "
                        f"itself when it opens it, as it just did for {env.mill.url}")


def _template(name: str) -> string.Template:
    return string.Template((resources.files("taskmill") / "templates" / name).read_text("utf-8"))


def _module_path(directory: Path, name: str) -> str:
    relative = os.path.relpath(directory.resolve(), Path.cwd())
    if relative == ".":
        return name
    parts = Path(relative).parts
    if parts[0] == ".." or not all(p.isidentifier() for p in parts):
        return name
    return ".".join((*parts, name))


@click.command("new-task", epilog="""\b
Examples:
  taskmill new-task send_invoice --app myapp:mill      # tasks/send_invoice.py + tests/test_send_invoice.py
  taskmill new-task import_products --class --dir myapp/tasks
""")
@click.argument("name")
@click.option("--class", "as_class", is_flag=True,
              help="A Task subclass with a pydantic input model instead of a function.")
@click.option("--dir", "directory", default="tasks", show_default=True, type=click.Path(file_okay=False),
              help="Where the task file goes; its test goes to tests/.")
@uses_mill
def new_task(env: Env, name: str, as_class: bool, directory: str) -> None:
    """Write a task file and its test to start from.

    Writes DIR/NAME.py and tests/test_NAME.py; never overwrites a file. With --app the task
    registers on your app's Mill."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name.startswith("test"):
        raise click.BadParameter("a task name is a lowercase Python identifier such as send_invoice "
                                 "(not starting with 'test')", param_hint="NAME")
    folder = Path(directory)
    task_file, test_file = folder / f"{name}.py", Path("tests") / f"test_{name}.py"
    for path in (task_file, test_file):
        if path.exists():
            raise ConfigError(f"{path} already exists; not overwriting it (remove it or pick another "
                              f"name)")
    names = ["Cancelled", "Context", "Continue", "Task"] if as_class else ["Cancelled", "Context"]
    if env.app:
        module, _, attr = env.app.partition(":")
        attr = attr or "mill"
        mill_import = f"\nfrom {module} import {attr}" + ("" if attr == "mill" else " as mill") + "\n"
    else:
        names.append("Mill")
        mill_import = ("\n# TODO: use your app's Mill instead (from myapp import mill), so that its "
                       "workers see this task.\nmill = Mill()\n")
    words = {"name": name, "cls": "".join(w.capitalize() for w in name.split("_") if w),
             "module": _module_path(folder, name), "mill_import": mill_import,
             "taskmill_names": ", ".join(names)}
    kind = "class" if as_class else "function"
    task_text = _template(f"task_{kind}.py.tmpl").substitute(words)
    test_text = _template(f"test_{kind}.py.tmpl").substitute(words)
    if not folder.exists():
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
    test_file.parent.mkdir(parents=True, exist_ok=True)
    with open(task_file, "x", encoding="utf-8") as fh:
        fh.write(task_text)
    with open(test_file, "x", encoding="utf-8") as fh:
        fh.write(test_text)
    out = console()
    out.print(f"wrote {task_file}\nwrote {test_file}")
    out.print(Text(f"next: import {words['module']} where your Mill is defined (after it), so workers "
                   f"register the task; then run pytest {test_file}", style="dim"))
