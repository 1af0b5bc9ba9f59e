"""GraphQL at /graphql, the Webiny operations over the same service as the HTTP API: list
definitions, runs and logs; trigger, abort, retry and delete. Queries are limited in depth and cost."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    build_schema,
    execute,
    get_operation_ast,
    parse,
    validate,
)
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidInput, JobNotFound, TaskmillError, http_status
from ..job import Job
from ..task import field_errors
from .api import error_body
from .auth import Principal, principal_of
from .models import EnqueueRequest, JobOut, JobsQuery, LogOut
from .service import Service, call

MAX_DEPTH = 8
MAX_COST = 10_000
MAX_QUERY_CHARS = 20_000
# A list field's size, for the cost: its `limit` argument, else this default.
LIST_SIZES = {"runs": 50, "logs": 100, "children": 100, "definitions": 100}

SDL = '''
"""Any JSON value."""
scalar JSON

enum RunState { scheduled queued running succeeded failed cancelled }

"""A task definition: what can be triggered, and its input's JSON Schema."""
type Definition {
  name: String!
  queue: String!
  priority: Int!
  max_attempts: Int!
  max_iterations: Int!
  timeout: Float
  periodic: JSON
  input_schema: JSON!
  doc: String!
}

type RunError { type: String!  message: String!  traceback: String! }

type Log { at: String!  level: String!  message: String!  attempt: Int!  job_id: ID! }

"""A run is a job, with the job's fields; `input` and `output` name its kwargs and result."""
type Run {
  id: ID!
  task: String!
  queue: String!
  state: RunState!
  args: JSON!
  kwargs: JSON!
  input: JSON!
  output: JSON
  result: JSON
  error: RunError
  priority: Int!
  attempts: Int!
  max_attempts: Int!
  attempts_left: Int!
  progress: Float!
  progress_message: String
  owner: String
  title: String
  parent: ID
  result_url: String
  return_url: String
  iterations: Int!
  cancel_reason: String
  created_at: String!
  scheduled_at: String!
  started_at: String
  finished_at: String
  logs(limit: Int): [Log!]!
  children(limit: Int): [Run!]!
}

type RunPage { items: [Run!]!  next: String }

input RunFilter { state: [RunState!]  queue: String  task: String  owner: String  parent: ID }

type Query {
  definitions: [Definition!]!
  runs(filter: RunFilter, limit: Int = 50, after: String): RunPage!
  run(id: ID!): Run
  logs(jobId: ID!, limit: Int): [Log!]!
}

type Mutation {
  trigger(task: String!, input: JSON, delay: String, parent: ID, title: String): Run!
  abort(id: ID!, message: String): Run!
  retry(id: ID!): Run!
  delete(id: ID!): Boolean!
}
'''


class Ctx:
    def __init__(self, service: Service, who: Principal) -> None:
        self.service = service
        self.who = who


def run_of(job: Job) -> dict[str, Any]:
    data = JobOut.of(job).model_dump(mode="json")
    return {**data, "input": data["kwargs"], "output": data["result"]}


def log_of(record: Any) -> dict[str, Any]:
    return {**LogOut.of(record).model_dump(mode="json"), "job_id": record.job_id}


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a taskmill error into a GraphQL error carrying its type, HTTP status and fields."""
    @functools.wraps(fn)
    def wrapper(root: Any, info: GraphQLResolveInfo[Any], **kwargs: Any) -> Any:
        try:
            return fn(root, info, **kwargs)
        except ValidationError as exc:
            error: TaskmillError = InvalidInput("invalid arguments", field_errors(exc))
        except TaskmillError as exc:
            error = exc
        body = error_body(error)["error"]
        raise GraphQLError(body["message"], extensions={
            "type": body["type"], "status": http_status(error), "fields": body["fields"]})
    return wrapper


def ctx(info: GraphQLResolveInfo[Any]) -> Ctx:
    context = info.context
    assert isinstance(context, Ctx)
    return context


@guarded
def resolve_definitions(_: Any, info: GraphQLResolveInfo[Any]) -> list[dict[str, Any]]:
    return ctx(info).service.tasks()


@guarded
def resolve_runs(_: Any, info: GraphQLResolveInfo[Any], filter: dict[str, Any] | None = None,
                 limit: int = 50, after: str | None = None) -> dict[str, Any]:
    c = ctx(info)
    query = JobsQuery(**(filter or {}), limit=limit, after=after)
    jobs, cursor = c.service.page(c.who, query)
    return {"items": [run_of(j) for j in jobs], "next": cursor}


@guarded
def resolve_run(_: Any, info: GraphQLResolveInfo[Any], id: str) -> dict[str, Any] | None:
    c = ctx(info)
    try:
        return run_of(c.service.get(c.who, id))
    except JobNotFound:
        return None


def _limit(limit: int | None) -> int | None:
    if limit is not None and not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000",
                           [{"loc": ["limit"], "msg": "out of range", "type": "limit"}])
    return limit


@guarded
def resolve_logs(_: Any, info: GraphQLResolveInfo[Any], jobId: str,
                 limit: int | None = None) -> list[dict[str, Any]]:
    c = ctx(info)
    return [log_of(r) for r in c.service.logs(c.who, jobId, _limit(limit))]


@guarded
def resolve_run_logs(run: dict[str, Any], info: GraphQLResolveInfo[Any],
                     limit: int | None = None) -> list[dict[str, Any]]:
    c = ctx(info)
    return [log_of(r) for r in c.service.logs(c.who, run["id"], _limit(limit))]


@guarded
def resolve_children(run: dict[str, Any], info: GraphQLResolveInfo[Any],
                     limit: int | None = None) -> list[dict[str, Any]]:
    c = ctx(info)
    return [run_of(j) for j in c.service.children(c.who, run["id"], _limit(limit) or 100)]


def _delay(delay: str | None) -> float | str | None:
    if delay is None:
        return None
    try:
        return float(delay)
    except ValueError:
        return delay


@guarded
def resolve_trigger(_: Any, info: GraphQLResolveInfo[Any], task: str, input: Any = None,
                    delay: str | None = None, parent: str | None = None,
                    title: str | None = None) -> dict[str, Any]:
    c = ctx(info)
    fields: dict[str, Any] = {"task": task, "kwargs": input}
    for key, value in (("delay", _delay(delay)), ("parent", parent), ("title", title)):
        if value is not None:
            fields[key] = value
    return run_of(c.service.enqueue(c.who, EnqueueRequest.model_validate(fields)))


@guarded
def resolve_abort(_: Any, info: GraphQLResolveInfo[Any], id: str,
                  message: str | None = None) -> dict[str, Any]:
    c = ctx(info)
    return run_of(c.service.cancel(c.who, id, message))


@guarded
def resolve_retry(_: Any, info: GraphQLResolveInfo[Any], id: str) -> dict[str, Any]:
    c = ctx(info)
    return run_of(c.service.retry(c.who, id))


@guarded
def resolve_delete(_: Any, info: GraphQLResolveInfo[Any], id: str) -> bool:
    c = ctx(info)
    c.service.delete(c.who, id)
    return True


def make_schema() -> GraphQLSchema:
    schema = build_schema(SDL)
    resolvers: dict[tuple[str, str], Callable[..., Any]] = {
        ("Query", "definitions"): resolve_definitions, ("Query", "runs"): resolve_runs,
        ("Query", "run"): resolve_run, ("Query", "logs"): resolve_logs,
        ("Run", "logs"): resolve_run_logs, ("Run", "children"): resolve_children,
        ("Mutation", "trigger"): resolve_trigger, ("Mutation", "abort"): resolve_abort,
        ("Mutation", "retry"): resolve_retry, ("Mutation", "delete"): resolve_delete,
    }
    for (type_name, field_name), resolver in resolvers.items():
        owner = schema.get_type(type_name)
        owner.fields[field_name].resolve = resolver  # type: ignore[union-attr]
    return schema


SCHEMA = make_schema()


# -- limits -----------------------------------------------------------------------------------

def measure(document: DocumentNode, operation: OperationDefinitionNode,
            variables: dict[str, Any]) -> tuple[int, int]:
    """The depth and cost of an operation: each field costs 1 times the sizes of the lists above
    it (a list's size is its `limit` argument or a default). Introspection is free."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def size(field: FieldNode) -> int:
        default = LIST_SIZES.get(field.name.value)
        if default is None:
            return 1
        for arg in field.arguments or ():
            if arg.name.value == "limit":
                if isinstance(arg.value, IntValueNode):
                    return max(1, int(arg.value.value))
                if isinstance(arg.value, VariableNode):
                    value = variables.get(arg.value.name.value)
                    if isinstance(value, int) and not isinstance(value, bool):
                        return max(1, value)
        return default

    def walk(selections: SelectionSetNode, depth: int, multiplier: int,
             seen: frozenset[str]) -> tuple[int, int]:
        deepest, cost = depth, 0
        for node in selections.selections:
            if isinstance(node, FieldNode):
                if node.name.value.startswith("__"):
                    continue
                cost += multiplier
                if node.selection_set is not None:
                    d, c = walk(node.selection_set, depth + 1, multiplier * size(node), seen)
                    deepest, cost = max(deepest, d), cost + c
            elif isinstance(node, InlineFragmentNode):
                d, c = walk(node.selection_set, depth, multiplier, seen)
                deepest, cost = max(deepest, d), cost + c
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                fragment = fragments.get(node.name.value)
                if fragment is not None:
                    d, c = walk(fragment.selection_set, depth, multiplier, seen | {node.name.value})
                    deepest, cost = max(deepest, d), cost + c
        return deepest, cost

    return walk(operation.selection_set, 1, 1, frozenset())


# -- the endpoint -----------------------------------------------------------------------------

def errors_response(messages: list[GraphQLError] | list[str], status: int = 400) -> JSONResponse:
    errors = [e.formatted if isinstance(e, GraphQLError) else {"message": e} for e in messages]
    return JSONResponse({"errors": errors}, status_code=status)


def run_operation(service: Service, who: Principal, source: str, variables: dict[str, Any],
                  operation_name: str | None, allow_mutation: bool) -> Response:
    if len(source) > MAX_QUERY_CHARS:
        return errors_response([f"the query is longer than {MAX_QUERY_CHARS} characters"])
    try:
        document = parse(source, max_tokens=5000)
    except GraphQLError as exc:
        return errors_response([exc])
    problems = validate(SCHEMA, document)
    if problems:
        return errors_response(problems)
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return errors_response(["name the operation to run (operationName)"])
    if operation.operation is OperationType.MUTATION and not allow_mutation:
        return errors_response(["mutations need a POST"], status=405)
    depth, cost = measure(document, operation, variables)
    if depth > MAX_DEPTH:
        return errors_response([f"the query is {depth} levels deep; at most {MAX_DEPTH} are allowed"])
    if cost > MAX_COST:
        return errors_response([f"the query costs {cost}; at most {MAX_COST} is allowed"])
    result = execute(SCHEMA, document, context_value=Ctx(service, who), variable_values=variables,
                     operation_name=operation_name)
    assert isinstance(result, ExecutionResult)
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [e.formatted for e in result.errors]
    return JSONResponse(body)


def endpoint(service: Service) -> Callable[[Request], Any]:
    async def graphql_endpoint(request: Request) -> Response:
        who = principal_of(request)
        if request.method == "GET":
            params = request.query_params
            source, name = params.get("query", ""), params.get("operationName")
            try:
                variables = json.loads(params.get("variables") or "{}")
            except ValueError:
                return errors_response(["variables must be a JSON object"])
            allow_mutation = False
        else:
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return errors_response(["send the query as application/json"], status=415)
            try:
                payload = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError):
                return errors_response(["the body must be JSON"])
            if not isinstance(payload, dict):
                return errors_response(["the body must be a JSON object"])
            source, name = payload.get("query") or "", payload.get("operationName")
            variables = payload.get("variables") or {}
            allow_mutation = True
        if not isinstance(source, str) or not source or not isinstance(variables, dict) \
                or not (name is None or isinstance(name, str)):
            return errors_response(["give a query (string), variables (object), operationName (string)"])
        return await call(run_operation, service, who, source, variables, name, allow_mutation)

    return graphql_endpoint
