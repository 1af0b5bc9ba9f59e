"""Access rules: loopback without a token, the token (bearer or login session), an app's own
`authenticate` with owners, CSRF tokens on forms, cross-site refusals, and escaping."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from taskmill import Mill
from taskmill.web import Principal, create_app

from .conftest import LOCAL, LOOPBACK, REMOTE, header_users

TOKEN = "correct horse battery staple"


def csrf_of(client: TestClient, path: str = "/tasks") -> str:
    """The CSRF token a dashboard page hands this browser (its cookie is kept by the client)."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert found, "no csrf_token field on the page"
    return found.group(1)


# -- no token: loopback only -----------------------------------------------------------------------

def test_without_a_token_a_loopback_client_is_served_as_admin(client: TestClient) -> None:
    assert client.get("/").status_code == 200
    assert client.get("/api/jobs").status_code == 200
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("path", ["/", "/jobs", "/tasks", "/api/jobs", "/api/stats", "/metrics",
                                  "/graphql?query={definitions{name}}", "/api/openapi.json"])
def test_without_a_token_a_non_loopback_request_gets_401(mill: Mill, path: str) -> None:
    # Given an app with no token configured
    with TestClient(create_app(mill), client=REMOTE) as remote:
        # When a client that is not on loopback asks
        response = remote.get(path, follow_redirects=False)
    # Then it is refused
    assert response.status_code == 401


def test_a_non_loopback_post_without_a_token_gets_401_and_changes_nothing(mill: Mill) -> None:
    with TestClient(create_app(mill), client=REMOTE) as remote:
        response = remote.post("/api/jobs", json={"task": "add", "kwargs": {"a": 1}})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "Unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert mill.jobs() == []


@pytest.mark.parametrize("path", ["/healthz", "/login", "/static/style.css", "/static/app.js"])
def test_health_login_and_static_files_are_open(mill: Mill, path: str) -> None:
    with TestClient(create_app(mill), client=REMOTE) as remote:
        assert remote.get(path).status_code == 200


def test_ipv6_loopback_counts_as_loopback(mill: Mill) -> None:
    with TestClient(create_app(mill), client=("::1", 5000), base_url="http://[::1]:8000") as local:
        assert local.get("/api/jobs").status_code == 200


# -- a token ---------------------------------------------------------------------------------------

def test_with_a_token_every_request_needs_it_loopback_too(mill: Mill) -> None:
    with TestClient(create_app(mill, token=TOKEN), client=LOOPBACK) as local:
        assert local.get("/api/jobs").status_code == 401
        assert local.get("/api/jobs", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert local.get("/api/jobs", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert local.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_token_is_read_from_taskmill_token_when_the_app_is_built(
        mill: Mill, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMILL_TOKEN", TOKEN)
    app = create_app(mill)
    monkeypatch.delenv("TASKMILL_TOKEN")
    with TestClient(app, client=REMOTE) as remote:
        assert remote.get("/api/stats").status_code == 401
        assert remote.get("/api/stats", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_dashboard_page_without_the_token_sends_the_browser_to_login(mill: Mill) -> None:
    with TestClient(create_app(mill, token=TOKEN), client=REMOTE) as remote:
        response = remote.get("/jobs?state=failed", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/jobs"


def test_logging_in_with_the_token_sets_a_session_that_opens_the_dashboard(mill: Mill) -> None:
    with TestClient(create_app(mill, token=TOKEN), client=REMOTE) as browser:
        # Given the login form with its CSRF token
        token = csrf_of(browser, "/login")
        # When a wrong token is posted, then the right one
        wrong = browser.post("/login", data={"token": "guess", "csrf_token": token, "next": "/tasks"})
        right = browser.post("/login", data={"token": TOKEN, "csrf_token": token, "next": "/tasks"},
                             follow_redirects=False)
        # Then the wrong one is refused, the right one lands on `next` with a session cookie
        assert wrong.status_code == 401 and "not right" in wrong.text
        assert right.status_code == 303 and right.headers["location"] == "/tasks"
        assert "httponly" in right.headers["set-cookie"].lower()
        assert browser.get("/tasks").status_code == 200
        assert browser.get("/api/jobs").status_code == 200
        # And signing out ends the session
        browser.post("/logout", data={"csrf_token": csrf_of(browser, "/tasks")})
        assert browser.get("/api/jobs").status_code == 401


def test_login_never_redirects_off_the_site(mill: Mill) -> None:
    with TestClient(create_app(mill, token=TOKEN), client=REMOTE) as browser:
        token = csrf_of(browser, "/login")
        response = browser.post("/login", data={"token": TOKEN, "csrf_token": token,
                                                "next": "//evil.example/"}, follow_redirects=False)
    assert response.headers["location"] == "/"


def test_a_forged_session_cookie_is_refused(mill: Mill) -> None:
    with TestClient(create_app(mill, token=TOKEN), client=REMOTE,
                    cookies={"taskmill_session": "abc.def"}) as browser:
        assert browser.get("/api/jobs").status_code == 401


# -- authenticate and owners -------------------------------------------------------------------------

def test_a_non_admin_sees_and_acts_on_only_its_own_jobs(
        mill: Mill, as_user: Callable[[str], TestClient]) -> None:
    # Given a job of bob's
    bobs = mill.enqueue("add", kwargs={"a": 1}, owner="user:bob")
    alice = as_user("alice")
    # When alice creates one, claiming someone else as owner
    mine = alice.post("/api/jobs", json={"task": "add", "kwargs": {"a": 2}, "owner": "user:bob"}).json()
    # Then it is hers anyway, she lists only hers, and bob's is 404 everywhere
    assert mine["owner"] == "user:alice"
    assert [j["id"] for j in alice.get("/api/jobs").json()["items"]] == [mine["id"]]
    assert alice.get("/api/jobs?owner=user:bob").json()["items"] == []
    for method, path in [("GET", ""), ("GET", "/logs"), ("GET", "/events"), ("POST", "/cancel"),
                         ("POST", "/retry"), ("DELETE", "")]:
        response = alice.request(method, f"/api/jobs/{bobs.id}{path}")
        assert response.status_code == 404, (method, path)
    assert mill.get(bobs.id).state == "queued"  # type: ignore[union-attr]
    assert alice.get(f"/jobs/{bobs.id}").status_code == 404
    assert alice.get(f"/jobs/{bobs.id}/progress").status_code == 404
    # And her stats count only her jobs
    assert alice.get("/api/stats").json()["default"]["queued"] == 1


def test_a_non_admin_cannot_use_another_owners_job_as_parent(
        mill: Mill, as_user: Callable[[str], TestClient]) -> None:
    bobs = mill.enqueue("add", kwargs={"a": 1}, owner="user:bob")
    body = {"task": "add", "kwargs": {"a": 1}, "parent": bobs.id}
    response = as_user("alice").post("/api/jobs", json=body)
    assert response.status_code == 422


def test_graphql_shows_a_non_admin_only_its_own_runs(
        mill: Mill, as_user: Callable[[str], TestClient]) -> None:
    bobs = mill.enqueue("add", kwargs={"a": 1}, owner="user:bob")
    alice = as_user("alice")
    trigger = 'mutation { trigger(task: "add", input: {a: 5}) { owner } }'
    created = alice.post("/graphql", json={"query": trigger})
    assert created.json()["data"]["trigger"]["owner"] == "user:alice"
    runs = alice.post("/graphql", json={"query": "{ runs { items { owner } } }"}).json()["data"]["runs"]
    assert runs["items"] == [{"owner": "user:alice"}]
    run = alice.post("/graphql", json={"query": "query($id: ID!) { run(id: $id) { id } }",
                                       "variables": {"id": bobs.id}})
    assert run.json()["data"] == {"run": None}
    aborted = alice.post("/graphql", json={"query": "mutation($id: ID!) { abort(id: $id) { id } }",
                                           "variables": {"id": bobs.id}}).json()
    assert aborted["errors"][0]["extensions"]["status"] == 404


def test_an_admin_from_authenticate_sees_every_job(mill: Mill, as_user: Callable[[str], TestClient]) -> None:
    mill.enqueue("add", kwargs={"a": 1}, owner="user:bob")
    mill.enqueue("add", kwargs={"a": 1})
    root = as_user("root")
    assert len(root.get("/api/jobs").json()["items"]) == 2
    created = root.post("/api/jobs", json={"task": "add", "kwargs": {"a": 1}}).json()
    assert created["owner"] == "user:root"


def test_a_non_admin_may_not_pause_queues_or_read_metrics(
        mill: Mill, as_user: Callable[[str], TestClient]) -> None:
    alice = as_user("alice")
    token = csrf_of(alice, "/tasks")
    assert alice.post("/queues/default/pause", data={"csrf_token": token}).status_code == 403
    assert mill.paused_queues() == set()
    assert alice.get("/metrics").status_code == 403


def test_when_authenticate_answers_none_the_request_gets_401_even_from_loopback(mill: Mill) -> None:
    with TestClient(create_app(mill, authenticate=header_users), client=LOOPBACK) as anonymous:
        assert anonymous.get("/api/jobs").status_code == 401


def test_an_async_authenticate_works_too(mill: Mill) -> None:
    async def authenticate(request: Request) -> Principal | None:
        return Principal(owner="user:carol") if request.headers.get("x-user") == "carol" else None

    mill.enqueue("add", kwargs={"a": 1}, owner="user:carol")
    with TestClient(create_app(mill, authenticate=authenticate), client=REMOTE) as carol:
        assert len(carol.get("/api/jobs", headers={"x-user": "carol"}).json()["items"]) == 1
        assert carol.get("/api/jobs").status_code == 401


def test_the_token_still_opens_the_app_as_admin_beside_authenticate(mill: Mill) -> None:
    mill.enqueue("add", kwargs={"a": 1}, owner="user:bob")
    with TestClient(create_app(mill, authenticate=header_users, token=TOKEN), client=REMOTE) as ops:
        items = ops.get("/api/jobs", headers={"authorization": f"Bearer {TOKEN}"}).json()["items"]
    assert len(items) == 1


# -- CSRF and cross-site ----------------------------------------------------------------------------

@pytest.mark.parametrize("action", ["cancel", "delete"])
def test_a_state_changing_post_without_the_csrf_token_is_refused(
        client: TestClient, mill: Mill, action: str) -> None:
    # Given a queued job
    job = mill.enqueue("add", kwargs={"a": 1})
    csrf_of(client)  # the browser has its CSRF cookie
    # When its button's form is posted without the token, or with a wrong one
    missing = client.post(f"/jobs/{job.id}/{action}", data={})
    wrong = client.post(f"/jobs/{job.id}/{action}", data={"csrf_token": "0" * 64})
    # Then both are refused and the job is untouched
    assert missing.status_code == 403 and wrong.status_code == 403
    assert mill.get(job.id).state == "queued"  # type: ignore[union-attr]


def test_a_trigger_form_without_the_csrf_token_is_refused(client: TestClient, mill: Mill) -> None:
    assert client.post("/tasks/add", data={"a": "1"}).status_code == 403
    assert mill.jobs() == []


def test_the_csrf_token_of_one_browser_does_not_work_for_another(mill: Mill) -> None:
    app = create_app(mill)
    job = mill.enqueue("add", kwargs={"a": 1})
    with TestClient(app, client=LOOPBACK, base_url=LOCAL) as first, \
            TestClient(app, client=LOOPBACK, base_url=LOCAL) as second:
        token = csrf_of(first)
        csrf_of(second)
        assert second.post(f"/jobs/{job.id}/cancel", data={"csrf_token": token}).status_code == 403
        assert first.post(f"/jobs/{job.id}/cancel", data={"csrf_token": token}).status_code == 200


@pytest.mark.parametrize("headers", [{"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"},
                                     {"origin": "http://evil.example"}, {"origin": "null"}])
def test_a_cross_site_request_that_changes_state_is_refused(
        client: TestClient, mill: Mill, headers: dict[str, str]) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    assert client.post(f"/api/jobs/{job.id}/cancel", headers=headers).status_code == 403
    assert client.post("/graphql", headers=headers, json={
        "query": "mutation($id: ID!) { delete(id: $id) }", "variables": {"id": job.id}}).status_code == 403
    assert mill.get(job.id).state == "queued"  # type: ignore[union-attr]


def test_a_same_origin_request_from_the_browser_is_served(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    response = client.post(f"/api/jobs/{job.id}/cancel",
                           headers={"sec-fetch-site": "same-origin", "origin": "http://testserver"})
    assert response.status_code == 200


# -- escaping -----------------------------------------------------------------------------------------

def test_a_script_in_a_title_and_a_log_line_shows_as_text(client: TestClient, mill: Mill) -> None:
    # Given a job whose title and log line hold a script tag
    evil = "<script>alert('x')</script>"
    job = mill.enqueue("boom", kwargs={"message": evil}, title=evil)
    mill.worker(poll="50ms").run(burst=True)
    # When the pages that show them are read
    pages = [client.get(path).text for path in ("/", "/jobs", f"/jobs/{job.id}", f"/jobs/{job.id}/progress")]
    # Then the markup is escaped everywhere, never live
    for html in pages:
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_a_logged_script_line_is_escaped_on_the_job_page(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("Export", kwargs={"name": "<script>alert(1)</script>"})
    mill.worker(poll="50ms").run(burst=True)
    html = client.get(f"/jobs/{job.id}").text
    assert "exported &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html


def test_pages_carry_a_content_security_policy_without_inline_scripts(client: TestClient) -> None:
    policy = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_a_javascript_result_url_is_never_followed(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1}, result_url="javascript:alert(1)")
    mill.worker(poll="50ms").run(burst=True)
    response = client.get(f"/jobs/{job.id}/progress", follow_redirects=False)
    assert response.status_code == 200
    assert 'href="javascript' not in response.text and "data-result" not in response.text


def test_without_a_token_a_loopback_request_naming_another_host_is_refused(mill: Mill) -> None:
    # Given the app with no token, reached from this machine through a rebound DNS name
    with TestClient(create_app(mill), client=("127.0.0.1", 5000),
                    base_url="http://rebind.attacker.example:8000") as rebound:
        # When it lists or creates jobs Then it is refused as a stranger would be
        assert rebound.get("/api/jobs").status_code == 401
        assert rebound.post("/api/jobs", json={"task": "add", "kwargs": {"a": 1}}).status_code == 401


def test_a_login_session_lapses_and_a_forged_one_is_refused(mill: Mill) -> None:
    from taskmill.web import auth

    access = auth.Access(TOKEN, None)
    # Given a fresh session, one whose time has passed, and one with its expiry edited
    fresh = access.new_session()
    expires, nonce, _ = fresh.split(".")
    body = f"{int(expires) - auth.SESSION_SECONDS - 1}.{nonce}"
    lapsed = f"{body}.{access._sign('session', body)}"
    edited = f"{int(expires) + 10**6}.{nonce}.{fresh.rsplit('.', 1)[1]}"
    # Then only the fresh one opens the app
    assert access.valid_session(fresh)
    assert not access.valid_session(lapsed)
    assert not access.valid_session(edited)
    assert not auth.Access("another token", None).valid_session(fresh)
