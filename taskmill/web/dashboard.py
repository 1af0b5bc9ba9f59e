"""The dashboard: server-rendered pages over the same service functions as the API, with forms
(each carrying a CSRF token) for every state change and a little JavaScript for live progress."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import InvalidInput, JobNotFound, TaskmillError, UnknownTask, http_status
from ..job import STATES, JobState
from ..task import field_errors
from .auth import CSRF_FIELD, SESSION_COOKIE, SESSION_SECONDS, Access, csrf_cookie_value, principal_of
from .models import EnqueueRequest, JobsQuery
from .service import Service, call

PAGE = 50
OPTION_FIELDS = ("title", "delay", "queue", "priority", "result_url", "return_url")
MESSAGES = {
    "cancelled": "Cancel requested.", "retried": "The job will run again.", "deleted": "Job removed.",
    "paused": "Queue paused.", "resumed": "Queue resumed.", "stopped": "Periodic task stopped.",
    "started": "Periodic task started.",
}
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def root_of(request: Request) -> str:
    """The prefix the app is mounted under ("" when served at the root)."""
    return str(request.scope.get("taskmill.root", request.scope.get("root_path", "")))


def when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(value: float) -> str:
    """Seconds as the shortest duration string: 3600 -> "1h", 90 -> "1m30s"."""
    rest = round(float(value))
    if rest <= 0:
        return f"{value}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def safe_url(url: str | None, job_id: str) -> str | None:
    """`url` with `{id}` filled in, if it is a relative path or an http(s) URL (never javascript:)."""
    if not url:
        return None
    filled = url.replace("{id}", job_id)
    parts = urlsplit(filled)
    if parts.scheme in ("http", "https") and parts.netloc:
        return filled
    if not parts.scheme and not parts.netloc and filled.startswith("/") and not filled.startswith("//") \
            and "\\" not in filled:
        return filled
    return None


class Pages:
    """The dashboard's handlers: each page reads through the service, each form posts back here."""

    def __init__(self, service: Service, access: Access) -> None:
        self.service = service
        self.access = access
        self.env = Environment(loader=PackageLoader("taskmill.web", "templates"),
                               autoescape=select_autoescape(default=True, default_for_string=True))
        self.env.filters["when"] = when
        self.env.filters["pretty"] = pretty
        self.env.filters["duration"] = duration

    # -- rendering ---------------------------------------------------------------------------

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        root = root_of(request)
        who = request.scope.get("taskmill.principal")
        cookie = csrf_cookie_value(request)
        html = self.env.get_template(name).render(
            request=request, base=root, who=who, csrf_field=CSRF_FIELD,
            csrf_token=self.access.csrf_token(cookie) if cookie else "",
            token_login=self.access.token is not None, app_auth=self.access.authenticate is not None,
            states=[s.value for s in STATES],
            message=MESSAGES.get(request.query_params.get("done", "")), **context)
        return HTMLResponse(html, status_code=status, headers=security_headers())

    def error(self, request: Request, exc: TaskmillError) -> HTMLResponse:
        return self.render(request, "error.html", status=http_status(exc), kind=type(exc).__name__,
                           error_message=exc.message)

    def back(self, request: Request, path: str, done: str) -> RedirectResponse:
        root = root_of(request)
        return RedirectResponse(f"{root}{path}?done={done}", status_code=303)

    async def form(self, request: Request) -> FormData:
        form = await request.form()
        given = form.get(CSRF_FIELD)
        if not self.access.valid_csrf(request, given if isinstance(given, str) else None):
            raise CsrfRefused()
        return form

    # -- pages -------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        who = principal_of(request)
        queues = await call(self.service.queues, who)
        buckets = await call(self.service.throughput, who)
        recent, _ = await call(self.service.page, who, JobsQuery(limit=10))
        periodic = await call(self.service.periodic) if who.admin else []
        totals = {s.value: sum(q.counts.get(s.value, 0) for q in queues) for s in STATES}
        peak = max([b.succeeded + b.failed for b in buckets] + [1])
        return self.render(request, "overview.html", queues=queues, totals=totals, buckets=buckets,
                           peak=peak, recent=recent, periodic=periodic)

    async def jobs(self, request: Request) -> Response:
        who = principal_of(request)
        params = request.query_params
        wanted = params.get("id", "").strip()
        if wanted:
            root = root_of(request)
            return RedirectResponse(f"{root}/jobs/{quote(wanted, safe='')}", status_code=303)
        filters = {k: params.get(k, "").strip() for k in ("state", "queue", "task", "owner", "parent")}
        try:
            query = JobsQuery.model_validate({**{k: v for k, v in filters.items() if v},
                                              "state": [filters["state"]] if filters["state"] else None,
                                              "limit": PAGE, "after": params.get("after") or None})
            jobs, cursor = await call(self.service.page, who, query)
        except ValidationError as exc:
            return self.error(request, InvalidInput("bad filter", field_errors(exc)))
        except TaskmillError as exc:
            return self.error(request, exc)
        keep = {k: v for k, v in filters.items() if v}
        next_href = f"?{urlencode({**keep, 'after': cursor})}" if cursor else None
        first_href = f"?{urlencode(keep)}" if params.get("after") else None
        return self.render(request, "jobs.html", jobs=jobs, filters=filters, next_href=next_href,
                           first_href=first_href)

    async def job(self, request: Request) -> Response:
        who = principal_of(request)
        job_id = request.path_params["id"]
        try:
            job = await call(self.service.get, who, job_id)
            logs = await call(self.service.logs, who, job_id, 500)
            children = await call(self.service.children, who, job_id)
        except TaskmillError as exc:
            return self.error(request, exc)
        parent = None
        if job.parent:
            try:
                parent = await call(self.service.get, who, job.parent)
            except JobNotFound:
                parent = None
        return self.render(request, "job.html", job=job, logs=logs, children=children, parent=parent,
                           retrying=job.state is JobState.SCHEDULED and job.attempts > 0,
                           result_href=safe_url(job.result_url, job.id))

    async def progress(self, request: Request) -> Response:
        who = principal_of(request)
        job_id = request.path_params["id"]
        try:
            job = await call(self.service.get, who, job_id)
            last = await call(self.service.logs, who, job_id, 1)
        except TaskmillError as exc:
            return self.error(request, exc)
        result_href = safe_url(job.result_url, job.id)
        if job.state is JobState.SUCCEEDED and result_href:
            return RedirectResponse(result_href, status_code=303)
        return self.render(request, "progress.html", job=job, last=last[-1] if last else None,
                           result_href=result_href, return_href=safe_url(job.return_url, job.id))

    async def tasks(self, request: Request) -> Response:
        who = principal_of(request)
        tasks = await call(self.service.tasks)
        periodic = {p["name"]: p for p in await call(self.service.periodic)}
        return self.render(request, "tasks.html", tasks=[with_fields(t) for t in tasks],
                           periodic=periodic, admin=who.admin, errors={}, values={}, general={})

    # -- actions -----------------------------------------------------------------------------

    async def act(self, request: Request) -> Response:
        """POST /jobs/{id}/cancel|retry|delete from the job page's buttons."""
        who = principal_of(request)
        job_id, action = request.path_params["id"], request.path_params["action"]
        if action not in ("cancel", "retry", "delete"):
            return self.render(request, "error.html", status=404, kind="NotFound",
                               error_message=f"no action {action!r}")
        form = await self.form(request)
        try:
            if action == "cancel":
                reason = form.get("reason")
                await call(self.service.cancel, who, job_id,
                           reason if isinstance(reason, str) and reason else "cancelled from the dashboard")
            elif action == "retry":
                await call(self.service.retry, who, job_id)
            else:
                await call(self.service.delete, who, job_id)
                return self.back(request, "/jobs", "deleted")
        except TaskmillError as exc:
            return self.error(request, exc)
        done = "retried" if action == "retry" else "cancelled"
        return self.back(request, f"/jobs/{quote(job_id, safe='')}", done)

    async def trigger(self, request: Request) -> Response:
        """POST /tasks/{name}: enqueue from the trigger form; field errors go back to the form."""
        who = principal_of(request)
        name = request.path_params["name"]
        form = await self.form(request)
        tasks = await call(self.service.tasks)
        task = next((t for t in tasks if t["name"] == name), None)
        if task is None:
            return self.error(request, UnknownTask(name))
        fields = with_fields(task)["fields"]
        kwargs, errors = read_form(fields, form)
        options = {key: value for key in OPTION_FIELDS
                   if isinstance(value := form.get(f"option.{key}"), str) and value.strip()}
        general: list[str] = []
        if not errors:
            try:
                body = EnqueueRequest.model_validate({"task": name, "kwargs": kwargs, **options})
                job = await call(self.service.enqueue, who, body)
            except ValidationError as exc:
                general = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            except InvalidInput as exc:
                general = [exc.message]
                for error in exc.errors:
                    loc = error.get("loc") or []
                    if loc and str(loc[0]) in {f["name"] for f in fields}:
                        errors.setdefault(str(loc[0]), []).append(error.get("msg", "invalid"))
                    else:
                        general.append(error.get("msg", ""))
            except TaskmillError as exc:
                general = [exc.message]
            else:
                root = root_of(request)
                target = "progress" if job.result_url else ""
                return RedirectResponse(f"{root}/jobs/{job.id}{'/' + target if target else ''}",
                                        status_code=303)
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        periodic = {p["name"]: p for p in await call(self.service.periodic)}
        return self.render(request, "tasks.html", status=422, tasks=[with_fields(t) for t in tasks],
                           periodic=periodic, admin=who.admin, errors={name: errors},
                           values={name: values}, general={name: general}, focus=name)

    async def queue(self, request: Request) -> Response:
        who = principal_of(request)
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ("pause", "resume"):
            return self.render(request, "error.html", status=404, kind="NotFound",
                               error_message=f"no action {action!r}")
        await self.form(request)
        try:
            if action == "pause":
                await call(self.service.pause_queue, who, name)
                return self.back(request, "/", "paused")
            await call(self.service.resume_queue, who, name)
            return self.back(request, "/", "resumed")
        except TaskmillError as exc:
            return self.error(request, exc)

    async def periodic(self, request: Request) -> Response:
        who = principal_of(request)
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ("stop", "start"):
            return self.render(request, "error.html", status=404, kind="NotFound",
                               error_message=f"no action {action!r}")
        await self.form(request)
        try:
            if action == "stop":
                await call(self.service.stop_periodic, who, name)
                return self.back(request, "/tasks", "stopped")
            await call(self.service.start_periodic, who, name)
            return self.back(request, "/tasks", "started")
        except TaskmillError as exc:
            return self.error(request, exc)

    # -- login -------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        next_path = local_path(request.query_params.get("next"), request)
        if request.method == "GET":
            return self.render(request, "login.html", next_path=next_path, failed=False)
        form = await self.form(request)
        token = form.get("token")
        next_path = local_path(str(form.get("next") or ""), request)
        if not isinstance(token, str) or not self.access.check_token(token):
            return self.render(request, "login.html", status=401, next_path=next_path, failed=True)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(SESSION_COOKIE, self.access.new_session(), httponly=True, samesite="lax",
                            secure=request.url.scheme == "https", max_age=SESSION_SECONDS,
                            path=root_of(request) or "/")
        return response

    async def logout(self, request: Request) -> Response:
        await self.form(request)
        root = root_of(request)
        response = RedirectResponse(f"{root}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=root or "/")
        return response


class CsrfRefused(Exception):
    """A state-changing form came without a valid CSRF token."""


def csrf_refused(request: Request, exc: Exception) -> Response:
    return HTMLResponse("<!doctype html><title>403</title><p>403 Forbidden: the form's CSRF token is "
                        "missing or stale. Go back, reload the page and try again.</p>",
                        status_code=403, headers=security_headers())


def security_headers() -> dict[str, str]:
    return {"content-security-policy": CSP, "x-content-type-options": "nosniff",
            "referrer-policy": "same-origin", "x-frame-options": "DENY"}


def local_path(value: str | None, request: Request) -> str:
    root = root_of(request)
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return f"{root}/"


# -- trigger forms from JSON Schema ------------------------------------------------------------

def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref`/`allOf` of one property, and drop `null` from an optional `anyOf`."""
    seen = 0
    while seen < 10:
        seen += 1
        if "$ref" in schema:
            target = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            schema = {**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}}
        elif "anyOf" in schema:
            options = [s for s in schema["anyOf"] if s.get("type") != "null"]
            if len(options) != 1:
                return schema
            schema = {**options[0], **{k: v for k, v in schema.items() if k != "anyOf"}, "nullable": True}
        else:
            return schema
    return schema


def widget(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "select"
    kind = schema.get("type")
    if kind == "boolean":
        return "checkbox"
    if kind in ("integer", "number"):
        return str(kind)
    if kind == "string":
        return "text"
    if kind in ("array", "object") or "anyOf" in schema:
        return "json"
    return "any"


def with_fields(task: dict[str, Any]) -> dict[str, Any]:
    """A task definition with `fields`: one form input per property of its input schema."""
    schema = task.get("input_schema") or {}
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    fields = []
    for name, raw in (schema.get("properties") or {}).items():
        prop = _resolve(dict(raw), defs)
        default = prop.get("default")
        fields.append({
            "name": name, "label": prop.get("title") or name.replace("_", " "),
            "widget": widget(prop), "required": name in required, "enum": prop.get("enum", []),
            "description": prop.get("description", ""),
            "default": "" if default is None else (json.dumps(default) if widget(prop) == "json"
                                                   else str(default).lower() if isinstance(default, bool)
                                                   else str(default)),
            "checked": default is True,
        })
    return {**task, "fields": fields}


def read_form(fields: list[dict[str, Any]], form: FormData) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The kwargs a trigger form asks for; empty inputs are left out so defaults apply."""
    kwargs: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for field in fields:
        name, kind = field["name"], field["widget"]
        raw = form.get(name)
        if kind == "checkbox":
            kwargs[name] = raw is not None and raw != "false"
            continue
        if not isinstance(raw, str) or raw.strip() == "":
            continue
        text = raw.strip()
        if kind == "json":
            try:
                kwargs[name] = json.loads(text)
            except ValueError:
                errors[name] = ["not valid JSON"]
        elif kind == "any":
            try:
                kwargs[name] = json.loads(text)
            except ValueError:
                kwargs[name] = text
        else:
            kwargs[name] = raw if kind == "text" else text
    return kwargs, errors


def routes(service: Service, access: Access) -> tuple[list[BaseRoute], Pages]:
    pages = Pages(service, access)
    return [
        Route("/", pages.overview, methods=["GET"], name="overview"),
        Route("/jobs", pages.jobs, methods=["GET"], name="jobs"),
        Route("/jobs/{id}", pages.job, methods=["GET"], name="job"),
        Route("/jobs/{id}/progress", pages.progress, methods=["GET"], name="progress"),
        Route("/jobs/{id}/{action:str}", pages.act, methods=["POST"], name="job_action"),
        Route("/tasks", pages.tasks, methods=["GET"], name="tasks"),
        Route("/tasks/{name}", pages.trigger, methods=["POST"], name="trigger"),
        Route("/queues/{name}/{action}", pages.queue, methods=["POST"], name="queue_action"),
        Route("/periodic/{name}/{action}", pages.periodic, methods=["POST"], name="periodic_action"),
        Route("/login", pages.login, methods=["GET", "POST"], name="login"),
        Route("/logout", pages.logout, methods=["POST"], name="logout"),
    ], pages


__all__ = ["CsrfRefused", "Pages", "csrf_refused", "routes"]
