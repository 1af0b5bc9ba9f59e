"""Who is asking: the token, the login session, loopback clients, an app's own `authenticate`, and
the CSRF and cross-origin checks that guard every state change."""

from __future__ import annotations

import hashlib
import hmac
import inspect
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import AccessDenied, Unauthorized

SESSION_COOKIE = "taskmill_session"
CSRF_COOKIE = "taskmill_csrf"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz", "/login"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: jobs it creates get `owner`; a non-admin sees only its own jobs."""

    owner: str | None = None
    admin: bool = False

    def may_see(self, owner: str | None) -> bool:
        return self.admin or (self.owner is not None and owner == self.owner)


ADMIN = Principal(owner=None, admin=True)
Authenticate = Callable[[Request], "Principal | Awaitable[Principal | None] | None"]


def route_path(scope: Scope) -> str:
    """The path inside this app, without the prefix it is mounted under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root):] or "/"
    return path


def app_path(scope: Scope) -> str:
    """The path inside the taskmill app, as the guard saw it (inner mounts change `root_path`)."""
    return str(scope.get("taskmill.path") or route_path(scope))


def is_loopback(conn: HTTPConnection) -> bool:
    host = conn.client.host if conn.client else ""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def local_host_header(conn: HTTPConnection) -> bool:
    """Whether the request names this machine in its Host header. Without a token, a page from a
    name that an attacker's DNS points at 127.0.0.1 (DNS rebinding) must not pass for local."""
    host = conn.headers.get("host", "").strip().lower()
    name = host[1:].split("]")[0] if host.startswith("[") else host.split(":")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


SESSION_SECONDS = 12 * 3600  # a login lasts a working day


class Access:
    """The access rules of one app: a token (or none: loopback only), an app's `authenticate`,
    and the secret behind session cookies and CSRF tokens."""

    def __init__(self, token: str | None, authenticate: Authenticate | None) -> None:
        self.token = token or None
        self.authenticate = authenticate
        # With a token the secret follows it, so several web processes accept each other's sessions.
        # A slow derivation: a stolen cookie must not make guessing a weak token cheap.
        self.secret = (hashlib.scrypt(self.token.encode(), salt=b"taskmill-web-session", n=2**14,
                                      r=8, p=1, dklen=32)
                       if self.token else secrets.token_bytes(32))

    def _sign(self, purpose: str, value: str) -> str:
        return hmac.new(self.secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    # -- sessions ----------------------------------------------------------------------------

    def check_token(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def new_session(self) -> str:
        """A signed session that lapses after SESSION_SECONDS."""
        body = f"{int(time.time()) + SESSION_SECONDS}.{secrets.token_hex(16)}"
        return f"{body}.{self._sign('session', body)}"

    def valid_session(self, value: str | None) -> bool:
        if not value or value.count(".") != 2 or self.token is None:
            return False
        body, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._sign("session", body)):
            return False
        expires = body.partition(".")[0]
        return expires.isdigit() and time.time() < int(expires)

    # -- CSRF --------------------------------------------------------------------------------

    def csrf_token(self, cookie: str) -> str:
        return self._sign("csrf", cookie)

    def valid_csrf(self, request: Request, given: str | None) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE)
        if not cookie or not given:
            return False
        return hmac.compare_digest(given, self.csrf_token(cookie))

    # -- who is asking -----------------------------------------------------------------------

    async def principal(self, request: Request) -> Principal | None:
        """The principal of a request, or None if it may not be served."""
        if self.authenticate is not None:
            found = self.authenticate(request)
            if inspect.isawaitable(found):
                found = await found
            if found is not None:
                if not isinstance(found, Principal):
                    raise TypeError(f"authenticate() must return a Principal or None, got {found!r}")
                return found
        if self.token is not None:
            header = request.headers.get("authorization", "")
            scheme, _, credentials = header.partition(" ")
            if scheme.lower() == "bearer" and self.check_token(credentials.strip()):
                return ADMIN
            if self.valid_session(request.cookies.get(SESSION_COOKIE)):
                return ADMIN
            return None
        if self.authenticate is None and is_loopback(request) and local_host_header(request):
            return ADMIN
        return None


def cross_origin(request: Request) -> bool:
    """Whether a browser sent this request from another site (the Sec-Fetch-Site and Origin check
    that keeps other pages from driving the API with the user's cookie or loopback address)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def principal_of(request: Request) -> Principal:
    """The principal the guard found for this request."""
    found = request.scope.get("taskmill.principal")
    if not isinstance(found, Principal):
        raise Unauthorized()
    return found


def error_json(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, "fields": []}}, status_code=status)


def wants_html(request: Request, path: str) -> bool:
    if path.startswith(("/api", "/graphql", "/metrics")):
        return False
    return "text/html" in request.headers.get("accept", "") or request.method == "GET"


class Guard:
    """ASGI middleware: every request but the open ones needs a principal; a state change from
    another site is refused; dashboard pages get a CSRF cookie."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        path = route_path(scope)
        scope["taskmill.path"] = path
        scope["taskmill.root"] = scope.get("root_path", "")
        if request.method not in SAFE_METHODS and cross_origin(request):
            await self._refuse(request, path, AccessDenied("cross-site request refused"))(
                scope, receive, send)
            return
        open_path = path in OPEN_PATHS or path.startswith("/static/")
        principal = await self.access.principal(request)
        if principal is None and not open_path:
            await self._refuse(request, path, Unauthorized())(scope, receive, send)
            return
        scope["taskmill.principal"] = principal
        new_csrf = None
        if CSRF_COOKIE not in request.cookies and not path.startswith(("/api", "/static", "/metrics")):
            new_csrf = secrets.token_hex(16)
            # Templates read the cookie through the request; give it the value to be set.
            scope.setdefault("taskmill.csrf_cookie", new_csrf)
        if new_csrf is None:
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https"
        cookie_path = scope.get("root_path", "") or "/"

        async def send_with_cookie(message: Any) -> None:
            if message["type"] == "http.response.start":
                cookie = (f"{CSRF_COOKIE}={new_csrf}; Path={cookie_path}; HttpOnly; SameSite=Lax"
                          + ("; Secure" if secure else ""))
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _refuse(self, request: Request, path: str, error: Unauthorized | AccessDenied) -> Response:
        status = 401 if isinstance(error, Unauthorized) else 403
        if status == 401 and self.access.token is not None and wants_html(request, path) \
                and request.method == "GET":
            root = request.scope.get("root_path", "")
            return RedirectResponse(f"{root}/login?next={quote(root + path)}", status_code=303)
        if status == 401 and wants_html(request, path):
            why = ("Sign in at /login with the token." if self.access.token is not None else
                   "This dashboard serves only this machine (loopback) until a token is "
                   "configured: set TASKMILL_TOKEN and sign in with it.")
            return Response(f"401 Unauthorized. {why}\n", status_code=401, media_type="text/plain")
        response = error_json(status, type(error).__name__, error.message)
        if status == 401:
            response.headers["www-authenticate"] = 'Bearer realm="taskmill"'
        return response


def csrf_cookie_value(request: Request) -> str:
    """The CSRF cookie of this browser (or the one being set on this response)."""
    return request.cookies.get(CSRF_COOKIE) or str(request.scope.get("taskmill.csrf_cookie", ""))


__all__ = ["ADMIN", "Access", "Authenticate", "Guard", "Principal", "principal_of"]
