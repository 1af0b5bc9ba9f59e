"""The `taskmill` command: run workers and the dashboard, and manage jobs from the shell.

The commands hold no logic of their own: each loads the app's `Mill` (or opens the store from
`--url`) and calls it."""

from __future__ import annotations

import sys

import click

from .. import __version__
from .admin import migrate, new_task, periodic, queues, stats, tasks
from .jobs import cancel, enqueue, logs, ls, purge, retry, rm, show, wait
from .serve import run, web, worker

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Ordered(click.Group):
    """Lists commands in the order they were added (run first, then jobs, then the rest)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=Ordered, context_settings=CONTEXT, epilog="""\b
Every command takes --app MODULE:MILL (or TASKMILL_APP) and --url URL (or TASKMILL_URL).
Exit codes: 0 success, 1 error (one line on stderr; --debug shows the traceback), 2 usage error.
\b
Start:
  taskmill run --app examples.app:mill      # worker + dashboard on ./taskmill.db
  taskmill ls --state failed                # then: taskmill show ID, taskmill retry ID
\b
Shell completion (bash; zsh and fish alike with zsh_source / fish_source):
  eval "$(_TASKMILL_COMPLETE=bash_source taskmill)"
""")
@click.version_option(__version__, "-V", "--version", prog_name="taskmill")
@click.option("--debug", is_flag=True, hidden=True)
@click.option("--url", metavar="URL", hidden=True)
@click.option("--app", metavar="MODULE:MILL", hidden=True)
def cli(app: str | None, url: str | None, debug: bool) -> None:
    """taskmill: background jobs for Python. Run workers and the dashboard, enqueue jobs, follow,
    cancel, retry and remove them."""


for command in (run, worker, web, enqueue, ls, show, wait, logs, cancel, retry, rm, purge, stats,
                queues, periodic, tasks, new_task, migrate):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """The console script's entry point."""
    cli.main(args=argv, prog_name="taskmill")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

__all__ = ["cli", "main"]
