"""Task definitions (functions and `Task` classes), their options and input validation."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from . import retry as retry_policy
from .errors import ConfigError, InvalidInput
from .schedule import Schedule
from .timeutil import Duration, seconds

if TYPE_CHECKING:
    from .job import Job
    from .mill import Mill
    from .worker.context import Context

TASK_OPTIONS = ("name", "queue", "priority", "retry", "no_retry", "timeout", "every", "cron", "tz",
                "max_iterations")
DEFAULT_MAX_ITERATIONS = 1000
_STRICT_JSON = ConfigDict(ser_json_inf_nan="constants")


def field_errors(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """pydantic's field errors, JSON-safe."""
    return [{"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)]


@dataclass
class TaskDef:
    """A registered task: what runs, and its options."""

    name: str
    call: Callable[..., Any]
    is_async: bool
    queue: str = "default"
    priority: int = 0
    retry: dict[str, Any] = field(default_factory=lambda: retry_policy.parse(12))
    no_retry: tuple[type[BaseException], ...] = ()
    timeout: float | None = None
    schedule: Schedule | None = None
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    task_class: type[Task] | None = None
    input_model: type[BaseModel] | None = None
    signature: inspect.Signature | None = None
    adapters: dict[str, TypeAdapter[Any]] = field(default_factory=dict)
    takes_nothing: bool = False  # every parameter after ctx is optional: no arguments is fine
    doc: str = ""

    def prepare(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Check arguments against the input model or signature; returns them in JSON form."""
        if self.input_model is not None:
            if args:
                raise InvalidInput(f"task {self.name!r} takes its input as keyword arguments",
                                   [{"loc": ["args"], "msg": "positional arguments are not "
                                     "accepted", "type": "unexpected_positional_argument"}])
            try:
                model = self.input_model.model_validate(dict(kwargs))
            except ValidationError as exc:
                raise InvalidInput(f"invalid input for task {self.name!r}",
                                   field_errors(exc)) from None
            if self.task_class is not None:
                self.task_class().before_enqueue(model)
            return [], model.model_dump(mode="json")
        if self.signature is None or (self.takes_nothing and not args and not kwargs):
            return list(args), dict(kwargs)
        try:
            bound = self.signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"bad arguments for task {self.name!r}: {exc}",
                               [{"loc": [], "msg": str(exc), "type": "arguments"}]) from None
        if not self.adapters:
            return list(args), dict(kwargs)
        errors: list[dict[str, Any]] = []
        out_args, out_kwargs = list(args), dict(kwargs)
        for position, (pname, value) in enumerate(list(bound.arguments.items())[1:]):
            adapter = self.adapters.get(pname)
            if adapter is None:
                continue
            try:
                checked = adapter.dump_python(adapter.validate_python(value), mode="json")
            except ValidationError as exc:
                errors.extend(field_errors(exc, (pname,)))
                continue
            if pname in out_kwargs:
                out_kwargs[pname] = checked
            elif position < len(out_args):
                out_args[position] = checked
        if errors:
            raise InvalidInput(f"invalid input for task {self.name!r}", errors)
        return out_args, out_kwargs

    def revive(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Stored JSON arguments as the task takes them (a datetime annotated is a datetime)."""
        if not self.adapters or self.signature is None:
            return args, kwargs
        bound = self.signature.bind(None, *args, **kwargs)
        names = list(bound.arguments)[1:]
        out_args, out_kwargs = list(args), dict(kwargs)
        for position, pname in enumerate(names):
            adapter = self.adapters.get(pname)
            if adapter is None:
                continue
            if pname in out_kwargs:
                out_kwargs[pname] = adapter.validate_python(out_kwargs[pname])
            elif position < len(out_args):
                out_args[position] = adapter.validate_python(out_args[position])
        return out_args, out_kwargs

    def info(self) -> dict[str, Any]:
        """What `mill.tasks()` and the APIs tell of this task."""
        return {
            "name": self.name, "queue": self.queue, "priority": self.priority,
            "retry": self.retry, "max_attempts": retry_policy.max_attempts(self.retry),
            "no_retry": [c.__name__ for c in self.no_retry], "timeout": self.timeout,
            "max_iterations": self.max_iterations, "is_async": self.is_async,
            "periodic": self.schedule.describe() if self.schedule else None,
            "input_schema": self.input_schema(), "doc": self.doc,
        }

    def input_schema(self) -> dict[str, Any]:
        if self.input_model is not None:
            return self.input_model.model_json_schema()
        properties: dict[str, Any] = {}
        required: list[str] = []
        if self.signature is not None:
            for pname, param in list(self.signature.parameters.items())[1:]:
                if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                    continue
                adapter = self.adapters.get(pname)
                properties[pname] = adapter.json_schema() if adapter else {}
                if param.default is param.empty:
                    required.append(pname)
                elif _jsonable(param.default):
                    properties[pname]["default"] = param.default
        return {"type": "object", "properties": properties, "required": required}


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


class Task:
    """Base of class tasks: `run(self, ctx, input: Model)`, an input model, and hooks.

    Options may be class attributes of the decorator's names (`queue = "imports"`).
    """

    __taskmill__: ClassVar[TaskHandle | None] = None

    def run(self, ctx: Context, input: Any) -> Any:
        raise NotImplementedError

    def before_enqueue(self, input: Any) -> None:
        """Runs at the enqueue call; an exception refuses the enqueue."""

    def on_done(self, ctx: Context, result: Any) -> None:
        """The job ended succeeded."""

    def on_error(self, ctx: Context, error: Any) -> None:
        """The job ended failed (for any reason)."""

    def on_abort(self, ctx: Context) -> None:
        """A running job ended cancelled."""

    def on_max_iterations(self, ctx: Context) -> None:
        """A run asked to continue with no iterations left; the job then ends failed."""

    @classmethod
    def _handle(cls) -> TaskHandle:
        handle = cls.__dict__.get("__taskmill__")
        if handle is None:
            raise ConfigError(f"{cls.__name__} is not registered: decorate it with @mill.task")
        return handle  # type: ignore[no-any-return]

    @classmethod
    def enqueue(cls, **kwargs: Any) -> Job:
        return cls._handle().enqueue(**kwargs)

    @classmethod
    async def enqueue_async(cls, **kwargs: Any) -> Job:
        return await cls._handle().enqueue_async(**kwargs)

    @classmethod
    def enqueue_in(cls, delay: Duration, **kwargs: Any) -> Job:
        return cls._handle().enqueue_in(delay, **kwargs)

    @classmethod
    def enqueue_at(cls, when: datetime, **kwargs: Any) -> Job:
        return cls._handle().enqueue_at(when, **kwargs)

    @classmethod
    def enqueue_many(cls, items: Iterable[Mapping[str, Any]], **options: Any) -> list[Job]:
        return cls._handle().enqueue_many(items, **options)

    @classmethod
    def with_options(cls, **options: Any) -> TaskHandle:
        return cls._handle().with_options(**options)


class TaskHandle:
    """What `@mill.task` gives for a function: call it as before, or enqueue it."""

    def __init__(self, mill: Mill, definition: TaskDef, options: dict[str, Any] | None = None,
                 fn: Callable[..., Any] | None = None) -> None:
        self.mill = mill
        self.definition = definition
        self.name = definition.name
        self._options = options or {}
        self._fn = fn
        if fn is not None:
            self.__doc__ = fn.__doc__
            self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._fn is None:
            raise TypeError(f"task {self.name!r} is a class task: enqueue it instead")
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def with_options(self, **options: Any) -> TaskHandle:
        """The same task with enqueue options set (any option of `mill.enqueue`)."""
        self.mill._check_options(options)
        return TaskHandle(self.mill, self.definition, {**self._options, **options}, self._fn)

    def enqueue(self, *args: Any, **kwargs: Any) -> Job:
        return self.mill.enqueue(self.name, args=list(args), kwargs=kwargs, **self._options)

    async def enqueue_async(self, *args: Any, **kwargs: Any) -> Job:
        return await self.mill.enqueue_async(self.name, args=list(args), kwargs=kwargs,
                                             **self._options)

    def enqueue_in(self, delay: Duration, *args: Any, **kwargs: Any) -> Job:
        options = {**self._options, "delay": delay}
        return self.mill.enqueue(self.name, args=list(args), kwargs=kwargs, **options)

    def enqueue_at(self, when: datetime, *args: Any, **kwargs: Any) -> Job:
        options = {**self._options, "at": when}
        return self.mill.enqueue(self.name, args=list(args), kwargs=kwargs, **options)

    def enqueue_many(self, items: Iterable[Mapping[str, Any]], **options: Any) -> list[Job]:
        """Each item is the kwargs of one job; all are stored in one transaction, or none."""
        merged = {**self._options, **options}
        specs = []
        for item in items:
            if not isinstance(item, Mapping):
                raise InvalidInput(f"enqueue_many takes a list of keyword-argument dicts, got "
                                   f"{item!r}")
            specs.append({"task": self.name, "kwargs": dict(item), **merged})
        return self.mill.enqueue_many(specs)


MAX_PRIORITY = 2**31 - 1


def check_queue(name: Any) -> str:
    """A queue name: a non-empty string without ',', '*' or NUL, at most 200 characters."""
    if (not isinstance(name, str) or not name or name == "*" or "," in name or "\x00" in name
            or len(name) > 200):
        raise ConfigError(f"a queue name is a non-empty string without ',' or '*', got {name!r}")
    return name


def check_priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (
            -MAX_PRIORITY <= value <= MAX_PRIORITY):
        raise ConfigError(f"priority must be an int within ±{MAX_PRIORITY}, got {value!r}")
    return value


def task_options(source: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Options for a definition: the decorator's, else the class attributes of the same name."""
    out = {}
    for name in TASK_OPTIONS:
        if name in given:
            out[name] = given[name]
        elif inspect.isclass(source) and name in vars(source):
            out[name] = vars(source)[name]
    unknown = set(given) - set(TASK_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown task option(s): {', '.join(sorted(unknown))}")
    return out


def build_definition(source: Any, options: dict[str, Any]) -> TaskDef:
    """A `TaskDef` for a function or a `Task` subclass, with every option checked."""
    opts = task_options(source, options)
    name = opts.get("name") or getattr(source, "__name__", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a task needs a name, got {name!r}")
    queue = opts.get("queue", "default")
    check_queue(queue)
    priority = check_priority(opts.get("priority", 0))
    no_retry = opts.get("no_retry", ())
    if isinstance(no_retry, type):
        no_retry = (no_retry,)
    if not all(isinstance(c, type) and issubclass(c, BaseException) for c in no_retry):
        raise ConfigError(f"no_retry takes exception classes, got {no_retry!r}")
    timeout = opts.get("timeout")
    max_iterations = opts.get("max_iterations", DEFAULT_MAX_ITERATIONS)
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
        raise ConfigError(f"max_iterations must be a whole number of 1 or more, got {max_iterations!r}")
    common: dict[str, Any] = dict(
        name=name, queue=queue, priority=priority,
        retry=retry_policy.parse(opts["retry"]) if "retry" in opts else retry_policy.parse(12),
        no_retry=tuple(no_retry), timeout=None if timeout is None else seconds(timeout, what="timeout"),
        schedule=Schedule.parse(opts.get("every"), opts.get("cron"), opts.get("tz")),
        max_iterations=max_iterations, doc=inspect.cleandoc(source.__doc__ or ""),
    )
    if inspect.isclass(source):
        if not issubclass(source, Task):
            raise ConfigError(f"{source.__name__} is a class but not a taskmill.Task")
        if source.run is Task.run:
            raise ConfigError(f"{source.__name__} must define run(self, ctx, input)")
        model = _input_model(source)
        if common["schedule"] is not None and model is not None and any(
                f.is_required() for f in model.model_fields.values()):
            raise ConfigError(f"periodic task {name!r} runs without input: give its fields defaults")
        cls = source

        def call(ctx: Any, *args: Any, **kwargs: Any) -> Any:
            instance = cls()
            ctx._instance = instance
            return instance.run(ctx, model.model_validate(kwargs) if model else kwargs)

        return TaskDef(call=call, is_async=inspect.iscoroutinefunction(source.run),
                       task_class=source, input_model=model, **common)
    if not callable(source):
        raise ConfigError(f"@mill.task decorates a function or a Task subclass, not {source!r}")
    signature = inspect.signature(source)
    params = list(signature.parameters.values())
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY,
                                             params[0].POSITIONAL_OR_KEYWORD):
        raise ConfigError(f"task {name!r} must take the job context as its first parameter "
                          f"(def {name}(ctx, ...))")
    takes_nothing = not any(p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                            for p in params[1:])
    if common["schedule"] is not None and not takes_nothing:
        raise ConfigError(f"periodic task {name!r} runs without arguments: give its parameters defaults")
    return TaskDef(call=source, is_async=inspect.iscoroutinefunction(source), signature=signature,
                   adapters=_adapters(source, params[1:]), takes_nothing=takes_nothing, **common)


def _input_model(cls: type[Task]) -> type[BaseModel] | None:
    try:
        hints = typing.get_type_hints(cls.run)
    except Exception as exc:
        raise ConfigError(f"cannot read the input type of {cls.__name__}.run: {exc}") from exc
    model = hints.get("input")
    if inspect.isclass(model) and issubclass(model, BaseModel):
        return model
    return None  # no model: `input` is the keyword arguments as a dict


def _adapters(fn: Callable[..., Any], params: list[inspect.Parameter]) -> dict[str, TypeAdapter[Any]]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    out: dict[str, TypeAdapter[Any]] = {}
    for param in params:
        hint = hints.get(param.name, Any)
        if hint is Any or hint is object or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue  # nothing to check: the payload policy alone applies
        try:
            if inspect.isclass(hint) and issubclass(hint, BaseModel):
                out[param.name] = TypeAdapter(hint)
            else:  # keep NaN/inf as they are, so the payload policy refuses them
                out[param.name] = TypeAdapter(hint, config=_STRICT_JSON)
        except Exception as exc:
            raise ConfigError(f"cannot validate parameter {param.name!r}: {exc}") from exc
    return out
