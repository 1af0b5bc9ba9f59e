"""The web interface of a Mill: dashboard, progress page, HTTP API under /api, GraphQL at /graphql,
Prometheus metrics at /metrics and /healthz, as one Starlette app (`mill.asgi()`).

Access: with no token, only loopback clients are served (as admin); with a token (`token=` or
TASKMILL_TOKEN, read here), every request needs it as a bearer header or the login's session
cookie. `authenticate(request) -> Principal | None` (sync or async) plugs in an app's own users.
"""

from __future__ import annotations

import os
from importlib.resources import files

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import AccessDenied, TaskmillError, http_status
from ..mill import Mill
from . import api, dashboard, graphql
from .auth import Access, Authenticate, Guard, Principal, app_path, principal_of
from .metrics import CONTENT_TYPE, Metrics
from .service import Service, call


def create_app(mill: Mill, authenticate: Authenticate | None = None, token: str | None = None) -> Starlette:
    """The whole web interface of `mill` as one ASGI app, to serve or mount."""
    access = Access(token if token is not None else os.environ.get("TASKMILL_TOKEN"), authenticate)
    service = Service(mill)
    metrics = Metrics(mill)
    pages_routes, pages = dashboard.routes(service, access)

    async def healthz(request: Request) -> Response:
        try:
            await call(mill.paused_queues)
        except TaskmillError as exc:
            return JSONResponse({"ok": False, "error": exc.message}, status_code=503)
        return JSONResponse({"ok": True})

    async def prometheus(request: Request) -> Response:
        if not principal_of(request).admin:
            return api.error_response(AccessDenied("metrics are for admins"))
        return Response(await call(metrics.render), media_type=CONTENT_TYPE)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        if app_path(request.scope).startswith(("/api", "/graphql", "/metrics")):
            return JSONResponse({"error": {"type": "HTTPError", "message": detail, "fields": []}},
                                status_code=status, headers=headers)
        return PlainTextResponse(f"{status} {detail}", status_code=status, headers=headers)

    async def taskmill_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TaskmillError)
        if app_path(request.scope).startswith(("/api", "/graphql", "/metrics")):
            return api.error_response(exc)
        return PlainTextResponse(f"{http_status(exc)} {exc.message}", status_code=http_status(exc))

    static = StaticFiles(directory=str(files("taskmill.web") / "static"))
    gql = graphql.endpoint(service)
    app = Starlette(
        routes=[
            Mount("/api", routes=api.routes(service)),
            Route("/graphql", gql, methods=["GET", "POST"]),
            Route("/metrics", prometheus, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Mount("/static", app=static, name="static"),
            *pages_routes,
        ],
        exception_handlers={HTTPException: http_error, TaskmillError: taskmill_error, Exception: http_error,
                            dashboard.CsrfRefused: dashboard.csrf_refused},
    )
    app.add_middleware(Guard, access=access)
    app.state.mill = mill
    app.state.service = service
    app.state.metrics = metrics
    app.state.pages = pages
    return app


__all__ = ["Principal", "create_app"]
