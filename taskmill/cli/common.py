"""What every command shares: `--app`/`--url`/`--debug`, loading the app's Mill, turning errors
into one line on stderr, and the consoles output goes to."""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from rich.console import Console

from ..errors import BackendUnavailable, ConfigError, InvalidInput, TaskmillError
from ..mill import Mill

F = TypeVar("F", bound=Callable[..., Any])


def console(stderr: bool = False) -> Console:
    """A Rich console; wide when not on a terminal, so piped tables keep whole values."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=200 if wide else None, highlight=False, soft_wrap=False)


def echo_json(value: Any) -> None:
    """Machine-readable output: indented JSON, datetimes as ISO 8601."""
    click.echo(json.dumps(value, indent=2, default=_json_default, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


@dataclass
class Env:
    """The app and store a command works on, opened on first use."""

    app: str | None
    url: str | None
    url_given: bool
    debug: bool
    module: ModuleType | None = None
    _mill: Mill | None = field(default=None, repr=False)

    @property
    def mill(self) -> Mill:
        if self._mill is None:
            if self.app:
                self.module, self._mill = load_app(self.app)
                if self.url and self.url_given and self._mill.url != self.url:
                    if getattr(self._mill, "_backend", None) is not None:
                        raise ConfigError(f"{self.app} opened its store at import, so --url cannot "
                                          f"change it; set TASKMILL_URL instead")
                    self._mill.url = self.url
            else:
                self._mill = Mill(self.url)
        return self._mill

    def require_app(self, command: str) -> Mill:
        """The app's Mill; commands that need the task definitions refuse to run without it."""
        if not self.app:
            raise ConfigError(f"`taskmill {command}` needs your app to know its tasks: pass "
                              f"--app module:mill or set TASKMILL_APP")
        return self.mill

    def hook(self, *names: str) -> Callable[..., Any] | None:
        """The first of `names` the app module defines (e.g. its `seed(mill)`), if any."""
        self.require_app("run")
        for name in names:
            fn = getattr(self.module, name, None)
            if callable(fn):
                return fn  # type: ignore[no-any-return]
        return None

    def close(self) -> None:
        if self._mill is not None:
            self._mill.close()


def load_app(spec: str) -> tuple[ModuleType, Mill]:
    """Import `module:attribute` (attribute `mill` if omitted) with the current directory on the path."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "mill"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise ConfigError(f"--app takes module:attribute, such as myapp.tasks:mill, got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"cannot import {module_name!r}: no such module (looked in "
                              f"{os.getcwd()} and the installed packages)") from exc
        raise ConfigError(f"importing {module_name} failed: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    mill = getattr(module, attr, None)
    if mill is None:
        raise ConfigError(f"{module_name} has no attribute {attr!r} (--app {module_name}:NAME "
                          f"names the Mill)")
    if not isinstance(mill, Mill):
        raise ConfigError(f"{spec} is a {type(mill).__name__}, not a taskmill.Mill")
    return module, mill


def describe(exc: BaseException) -> str:
    """One line that says what went wrong, for a person."""
    if isinstance(exc, InvalidInput) and exc.errors:
        fields = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])) or 'input'}: {e.get('msg')}"
                           for e in exc.errors[:5])
        more = f" (and {len(exc.errors) - 5} more)" if len(exc.errors) > 5 else ""
        return f"{exc.message}: {fields}{more}"
    if isinstance(exc, BackendUnavailable):
        return f"the store is unreachable: {exc.message}"
    if isinstance(exc, TaskmillError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out"
    return f"{type(exc).__name__}: {exc} (run again with --debug to see the traceback)"


def uses_mill(fn: F) -> F:
    """Give a command `--app`, `--url` and `--debug`, pass it an `Env` as first argument, and turn
    any error it raises into one line on stderr with exit code 1 (the traceback with --debug)."""

    @functools.wraps(fn)
    def command(app: str | None, url: str | None, debug: bool, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        given = {name: ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
                 for name in ("app", "url", "debug")}
        values: dict[str, Any] = {"app": app, "url": url, "debug": debug}
        parent = ctx.parent
        while parent is not None:  # `taskmill queues --url X pause q`: the group's options count
            for name in values:
                if not given[name] and parent.get_parameter_source(name) is ParameterSource.COMMANDLINE:
                    values[name], given[name] = parent.params[name], True
            parent = parent.parent
        app, url, debug = values["app"], values["url"], bool(values["debug"])
        env = Env(app=app, url=url, debug=debug, url_given=given["url"])
        try:
            return fn(env, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None
        except Exception as exc:
            if debug:
                raise
            raise click.ClickException(describe(exc)) from None
        finally:
            try:
                env.close()
            except Exception:
                if debug:
                    raise

    options = [
        click.option("--debug", is_flag=True, envvar="TASKMILL_DEBUG",
                     help="Show the traceback of an error."),
        click.option("--url", envvar="TASKMILL_URL", metavar="URL",
                     help="The store: sqlite:///file.db, postgresql://..., redis://... "
                          "[env TASKMILL_URL; default: the app's, else sqlite:///taskmill.db]"),
        click.option("--app", envvar="TASKMILL_APP", metavar="MODULE:MILL",
                     help="Your app's Mill, e.g. myapp.tasks:mill; imported with the current "
                          "directory on the path [env TASKMILL_APP]."),
    ]
    for option in options:
        command = option(command)
    return command  # type: ignore[return-value]


def complete_task(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of task names, from the app given by --app or TASKMILL_APP."""
    spec = ctx.params.get("app") or os.environ.get("TASKMILL_APP")
    if not spec:
        return []
    try:
        _, mill = load_app(spec)
    except Exception:
        return []
    return [name for name in sorted(mill.registry) if name.startswith(incomplete)]


def parse_json(value: str, what: str) -> Any:
    """JSON from an option; a usage error (exit 2) if it is not JSON."""
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc.msg} at line {exc.lineno} column "
                                 f"{exc.colno}): {value!r}", param_hint=what) from None
