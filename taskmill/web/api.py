"""The HTTP API under /api: one table of endpoints, each with a typed request and response and one
handler; the OpenAPI document is generated from the same table."""

from __future__ import annotations

import asyncio
import json
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import UnionType
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..errors import InvalidInput, TaskmillError, http_status
from ..task import field_errors
from .auth import Principal, principal_of
from .models import (
    CancelRequest,
    EnqueueRequest,
    ErrorOut,
    EventsQuery,
    JobList,
    JobOut,
    JobsQuery,
    LogList,
    LogOut,
    LogsQuery,
    Stats,
    TaskList,
    TaskOut,
)
from .service import Service, call

M = TypeVar("M", bound=BaseModel)
POLL = 0.25
KEEPALIVE = 15.0
LOG_TAIL = 500


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler gets: the request, the service, who asks, and the parsed input."""

    request: Request
    service: Service
    path: dict[str, str]
    parsed_body: BaseModel | None
    parsed_query: BaseModel | None

    @property
    def who(self) -> Principal:
        return principal_of(self.request)

    def body(self, model: type[M]) -> M:
        assert isinstance(self.parsed_body, model)
        return self.parsed_body

    def query(self, model: type[M]) -> M:
        assert isinstance(self.parsed_query, model)
        return self.parsed_query


Handler = Callable[[Call], Awaitable[BaseModel | Response | None]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One row of the routes table: method and path, the handler, and the typed request parts and
    response that the OpenAPI document is made of."""

    method: str
    path: str
    handler: Handler
    summary: str
    response: type[BaseModel] | None
    status: int = 200
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    stream: bool = False


# -- handlers ---------------------------------------------------------------------------------

async def list_jobs(c: Call) -> JobList:
    jobs, cursor = await call(c.service.page, c.who, c.query(JobsQuery))
    return JobList(items=[JobOut.of(j) for j in jobs], next=cursor)


async def enqueue(c: Call) -> JobOut:
    job = await call(c.service.enqueue, c.who, c.body(EnqueueRequest))
    return JobOut.of(job)


async def get_job(c: Call) -> JobOut:
    return JobOut.of(await call(c.service.get, c.who, c.path["id"]))


async def job_logs(c: Call) -> LogList:
    records = await call(c.service.logs, c.who, c.path["id"], c.query(LogsQuery).limit)
    return LogList(items=[LogOut.of(r) for r in records])


async def cancel_job(c: Call) -> JobOut:
    body = c.parsed_body if isinstance(c.parsed_body, CancelRequest) else CancelRequest()
    return JobOut.of(await call(c.service.cancel, c.who, c.path["id"], body.reason))


async def retry_job(c: Call) -> JobOut:
    return JobOut.of(await call(c.service.retry, c.who, c.path["id"]))


async def delete_job(c: Call) -> Response:
    await call(c.service.delete, c.who, c.path["id"])
    return Response(status_code=204)


async def list_tasks(c: Call) -> TaskList:
    return TaskList(items=[TaskOut.model_validate(t) for t in await call(c.service.tasks)])


async def stats(c: Call) -> Stats:
    return Stats.model_validate(await call(c.service.stats, c.who))


async def job_events(c: Call) -> Response:
    job = await call(c.service.get, c.who, c.path["id"])
    stream = events(c.service, c.request, job.id, c.query(EventsQuery).logs)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def openapi(c: Call) -> Response:
    return JSONResponse(openapi_document())


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def events(service: Service, request: Request, job_id: str, with_logs: bool) -> AsyncIterator[bytes]:
    """A `progress` event with the job JSON on each change (polling the store, since the worker may
    be another process), `log` events if asked, and the end after the terminal state."""
    who = principal_of(request)
    last: dict[str, Any] | None = None
    seen_at: datetime | None = None
    seen_count = 0  # lines seen with `at == seen_at`
    quiet = 0.0
    while True:
        try:
            job, records = await call(service.follow, who, job_id, LOG_TAIL if with_logs else None)
        except TaskmillError as exc:
            yield sse("error", error_body(exc))
            return
        if records:
            fresh = [r for r in records if seen_at is None or r.at > seen_at]
            fresh = [r for r in records if r.at == seen_at][seen_count:] + fresh
            for record in fresh:
                yield sse("log", LogOut.of(record).model_dump(mode="json"))
                if record.at == seen_at:
                    seen_count += 1
                else:
                    seen_at, seen_count = record.at, 1
        data = JobOut.of(job).model_dump(mode="json")
        if data != last:
            last, quiet = data, 0.0
            yield sse("progress", data)
            if job.finished:
                return
        elif quiet >= KEEPALIVE:
            quiet = 0.0
            yield b": keep-alive\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL)
        quiet += POLL


# -- the table --------------------------------------------------------------------------------

NOT_FOUND = (404,)
ROUTES: tuple[Endpoint, ...] = (
    Endpoint("GET", "/jobs", list_jobs, "List jobs, newest first, filtered as mill.jobs", JobList,
             query=JobsQuery, errors=(422,)),
    Endpoint("POST", "/jobs", enqueue, "Enqueue a job", JobOut, status=201, body=EnqueueRequest,
             errors=(422,)),
    Endpoint("GET", "/jobs/{id}", get_job, "A job", JobOut, errors=NOT_FOUND),
    Endpoint("GET", "/jobs/{id}/logs", job_logs, "A job's log lines, oldest first", LogList,
             query=LogsQuery, errors=(404, 422)),
    Endpoint("POST", "/jobs/{id}/cancel", cancel_job, "Cancel a job", JobOut, body=CancelRequest,
             body_required=False, errors=(404, 409, 422)),
    Endpoint("POST", "/jobs/{id}/retry", retry_job, "Run a finished job again", JobOut,
             errors=(404, 409)),
    Endpoint("DELETE", "/jobs/{id}", delete_job, "Delete a job that is not running", None,
             status=204, errors=(404, 409)),
    Endpoint("GET", "/jobs/{id}/events", job_events,
             "Server-sent events: `progress` with the job JSON on each change, until terminal", None,
             query=EventsQuery, errors=NOT_FOUND, stream=True),
    Endpoint("GET", "/tasks", list_tasks, "The task definitions", TaskList),
    Endpoint("GET", "/stats", stats, "Per queue, the count of jobs in each state", Stats),
    Endpoint("GET", "/openapi.json", openapi, "This document", None),
)


# -- dispatch ---------------------------------------------------------------------------------

def error_body(exc: TaskmillError) -> dict[str, Any]:
    fields = exc.errors if isinstance(exc, InvalidInput) else []
    if not fields and type(exc).__name__ == "UnknownTask":
        fields = [{"loc": ["task"], "msg": exc.message, "type": "unknown_task"}]
    return {"error": {"type": type(exc).__name__, "message": exc.message, "fields": fields}}


def error_response(exc: TaskmillError) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=http_status(exc))


def invalid(exc: ValidationError, where: str) -> InvalidInput:
    return InvalidInput(f"invalid {where}", field_errors(exc, (where,)))


async def parse_body(request: Request, endpoint: Endpoint) -> BaseModel | None:
    assert endpoint.body is not None
    raw = await request.body()
    if not raw.strip() and not endpoint.body_required:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the body must be JSON",
                           [{"loc": ["body"], "msg": "not JSON", "type": "json_invalid"}]) from None
    try:
        return endpoint.body.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, "body") from None


def _is_list(annotation: Any) -> bool:
    """Whether a query field takes many values (`list[X]` or `list[X] | None`)."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (Union, UnionType) \
        else (annotation,)
    return any(typing.get_origin(option) is list for option in options)


def parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        values = request.query_params.getlist(name)
        if not values:
            continue
        if _is_list(info.annotation):
            data[name] = [part.strip() for v in values for part in v.split(",") if part.strip()]
        else:
            data[name] = values[-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, "query") from None


def handler_of(endpoint: Endpoint, service: Service) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        try:
            body = await parse_body(request, endpoint) if endpoint.body is not None else None
            query = parse_query(request, endpoint.query) if endpoint.query is not None else None
            c = Call(request, service, dict(request.path_params), body, query)
            out = await endpoint.handler(c)
        except TaskmillError as exc:
            return error_response(exc)
        if isinstance(out, Response):
            return out
        if out is None:
            return Response(status_code=endpoint.status)
        return Response(out.model_dump_json(), status_code=endpoint.status,
                        media_type="application/json")

    return handle


def routes(service: Service) -> list[BaseRoute]:
    """One Starlette route per path of the table, dispatching on the method (so a 405 names every
    method the path takes)."""
    by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for endpoint in ROUTES:
        by_path.setdefault(endpoint.path, {})[endpoint.method] = handler_of(endpoint, service)
    out: list[BaseRoute] = []
    for path, handlers in by_path.items():
        async def dispatch(request: Request, handlers: dict[str, Any] = handlers) -> Response:
            handler = handlers.get("GET" if request.method == "HEAD" else request.method)
            assert handler is not None  # the route only admits the table's methods
            return await handler(request)  # type: ignore[no-any-return]

        out.append(Route(path, dispatch, methods=list(handlers)))
    return out


# -- OpenAPI ----------------------------------------------------------------------------------

_document: dict[str, Any] | None = None


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for the table above, schemas from the pydantic models."""
    global _document
    if _document is not None:
        return _document
    from pydantic.json_schema import models_json_schema

    models: set[type[BaseModel]] = {ErrorOut}
    for ep in ROUTES:
        models.update(m for m in (ep.response, ep.body) if m is not None)
    _, top = models_json_schema([(m, "validation" if m in (EnqueueRequest, CancelRequest)
                                  else "serialization") for m in sorted(models, key=lambda m: m.__name__)],
                                ref_template="#/components/schemas/{model}")
    schemas = top.get("$defs", {})

    def ref(model: type[BaseModel]) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    error = {"description": "error", "content": {"application/json": {"schema": ref(ErrorOut)}}}
    paths: dict[str, dict[str, Any]] = {}
    for ep in ROUTES:
        op: dict[str, Any] = {"operationId": ep.handler.__name__, "summary": ep.summary}
        params: list[dict[str, Any]] = []
        if "{id}" in ep.path:
            params.append({"name": "id", "in": "path", "required": True, "schema": {"type": "string"}})
        if ep.query is not None:
            query_schema = ep.query.model_json_schema()
            for name, schema in query_schema["properties"].items():
                param = {"name": name, "in": "query", "required": False, "schema": schema}
                if "array" in json.dumps(schema):
                    param.update(style="form", explode=True)
                params.append(param)
        if params:
            op["parameters"] = params
        if ep.body is not None:
            op["requestBody"] = {"required": ep.body_required,
                                 "content": {"application/json": {"schema": ref(ep.body)}}}
        if ep.stream:
            ok: dict[str, Any] = {"description": "an event stream",
                                  "content": {"text/event-stream": {"schema": {"type": "string"}}}}
        elif ep.response is not None:
            ok = {"description": "ok", "content": {"application/json": {"schema": ref(ep.response)}}}
        elif ep.status == 204:
            ok = {"description": "done"}
        else:
            ok = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
        responses: dict[str, Any] = {str(ep.status): ok, "401": error, "403": error, "503": error}
        for status in ep.errors:
            responses[str(status)] = error
        op["responses"] = responses
        paths.setdefault("/api" + ep.path, {})[ep.method.lower()] = op
    _document = {
        "openapi": "3.1.0",
        "info": {"title": "taskmill", "version": _version(),
                 "description": "Background jobs: enqueue, follow, cancel, retry, remove."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}, {}],
    }
    return _document


def _version() -> str:
    from .. import __version__

    return __version__
