"""Real headless Chromium (Debian's) driven by Playwright against the app served by uvicorn on a
loopback port, with a worker running: what a person clicks through.

Set TASKMILL_SCREENSHOTS=docs/screenshots to refresh the screenshots of the docs."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from taskmill import Mill
from taskmill.web import create_app
from taskmill.worker import Worker

from .conftest import Served, header_users, wait_for

TOKEN = "let-me-in-please"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = os.environ.get("TASKMILL_SCREENSHOTS")
    return Path(folder) if folder else tmp_path


def bar_value(page: Any) -> float:
    return float(page.eval_on_selector("#bar", "el => el.value"))


def accept_dialogs(page: Any) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


def test_a_job_triggered_from_the_form_shows_its_bar_and_log_then_lands_on_the_result_url(
        served: Served, page: Any, mill: Mill, shots: Path) -> None:
    # Given the tasks page
    page.goto(f"{served.url}/tasks")
    form = page.locator("#task-slow form")
    # When the slow task is triggered from its form, with a result URL
    form.locator("input[name=steps]").fill("10")
    form.locator("input[name=pause]").fill("0.5")
    form.locator("summary").click()
    form.locator("input[name='option.title']").fill("Nightly <b>report</b>")
    form.locator("input[name='option.result_url']").fill("/jobs/{id}?from=progress")
    form.locator("button.primary").click()
    # Then the browser is on the job's progress page, whose bar moves and whose log line changes
    page.wait_for_url(re.compile(r"/jobs/\d+/progress$"))
    job_id = page.url.rsplit("/", 2)[-2]
    assert page.locator("h1").inner_text() == "Nightly <b>report</b>"
    wait_for(lambda: bar_value(page) > 0, timeout=10)
    first, first_line = bar_value(page), page.locator("#latest").inner_text()
    wait_for(lambda: bar_value(page) > first, timeout=10)
    wait_for(lambda: page.locator("#latest").inner_text() != first_line, timeout=10)
    assert re.fullmatch(r"did step \d+ of 10", page.locator("#latest").inner_text())
    page.screenshot(path=str(shots / "progress.png"))
    # And when the job succeeds it lands on the result URL with the id filled in
    page.wait_for_url(f"{served.url}/jobs/{job_id}?from=progress", timeout=20_000)
    assert page.locator("h1 [data-state]").inner_text() == "succeeded"
    assert '"steps": 10' in page.locator("#result").inner_text()


def test_the_job_page_streams_log_lines_and_progress_and_shows_the_result(
        served: Served, page: Any, mill: Mill, shots: Path) -> None:
    # Given the slow task's form filled in
    page.goto(f"{served.url}/tasks")
    form = page.locator("#task-slow form")
    form.locator("input[name=steps]").fill("10")
    form.locator("input[name=pause]").fill("0.3")
    # When it is triggered (no result URL: on to the job page)
    form.locator("button.primary").click()
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    # Then log lines arrive one by one while the bar moves
    wait_for(lambda: page.locator("#log li").count() >= 2, timeout=10)
    seen = page.locator("#log li").count()
    before = bar_value(page)
    wait_for(lambda: page.locator("#log li").count() > seen, timeout=10)
    assert bar_value(page) > before or bar_value(page) == 100
    assert page.locator("#log li").first.locator(".msg").inner_text() == "did step 1 of 10"
    page.screenshot(path=str(shots / "job-running.png"), full_page=True)
    # And once it is done the page shows the result
    page.locator("#result").wait_for(timeout=20_000)
    assert page.locator("#log li").count() == 10
    assert page.locator("h1 [data-state]").inner_text() == "succeeded"


def test_a_failed_job_is_retried_from_its_page(served: Served, page: Any, mill: Mill, shots: Path) -> None:
    # Given a job that failed
    job = mill.enqueue("boom", kwargs={"message": "the printer is on fire"}, title="Print labels")
    job.wait(timeout=10)
    page.goto(f"{served.url}/jobs/{job.id}")
    assert "the printer is on fire" in page.locator("#error").inner_text()
    assert "Traceback" in page.locator(".traceback").inner_text()
    page.screenshot(path=str(shots / "job-failed.png"), full_page=True)
    # When Retry is clicked
    page.get_by_role("button", name="Retry").click()
    # Then the job runs again: one more attempt, failed again, shown without reloading by hand
    page.get_by_text("The job will run again.").wait_for()
    page.get_by_text("2 of 2 (0 left)").wait_for(timeout=15_000)
    wait_for(lambda: mill.get(job.id).state == "failed" and mill.get(job.id).attempts == 2)  # type: ignore[union-attr]
    page.locator("#error").wait_for()


def test_a_running_job_is_cancelled_from_its_page(served: Served, page: Any, mill: Mill) -> None:
    # Given a long job that is running, and its page open
    job = mill.enqueue("slow", kwargs={"steps": 300, "pause": 0.1}, title="Long haul")
    wait_for(lambda: mill.get(job.id).progress > 0)  # type: ignore[union-attr]
    page.goto(f"{served.url}/jobs/{job.id}")
    accept_dialogs(page)
    # When Cancel is clicked (and confirmed)
    page.get_by_role("button", name="Cancel").click()
    # Then the job stops, and the page shows it cancelled with the reason
    page.locator("h1 [data-state]", has_text="cancelled").wait_for(timeout=15_000)
    assert "cancelled from the dashboard" in page.content()
    done = mill.get(job.id)
    assert done is not None and done.state == "cancelled" and done.progress < 100


def test_signing_in_with_the_token(mill: Mill, worker: Worker, page: Any, shots: Path) -> None:
    with Served(create_app(mill, token=TOKEN)) as served:
        # Given a dashboard that needs the token
        page.goto(f"{served.url}/jobs?state=failed")
        # Then the browser is sent to the login form
        page.wait_for_url(re.compile(r"/login\?next="))
        page.screenshot(path=str(shots / "login.png"))
        # When a wrong token is typed, then the right one
        page.fill("#token", "wrong")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("That token is not right.").wait_for()
        page.fill("#token", TOKEN)
        page.get_by_role("button", name="Sign in").click()
        # Then the dashboard opens on the page first asked for, and the API answers with the cookie
        page.wait_for_url(f"{served.url}/jobs")
        assert page.locator("h1").inner_text() == "Jobs"
        assert page.request.get(f"{served.url}/api/stats").status == 200
        # And signing out closes it again
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{served.url}/login")
        assert page.request.get(f"{served.url}/api/stats").status == 401


def test_an_owner_cannot_see_another_owners_job(mill: Mill, worker: Worker, browser: Any) -> None:
    # Given jobs of bob's and alice's, in an app whose users come from the X-User header
    bobs = mill.enqueue("add", kwargs={"a": 1}, title="Bob's payroll", owner="user:bob")
    alices = mill.enqueue("add", kwargs={"a": 2}, title="Alice's export", owner="user:alice")
    with Served(create_app(mill, authenticate=header_users)) as served:
        context = browser.new_context(extra_http_headers={"X-User": "alice"})
        try:
            page = context.new_page()
            # When alice lists the jobs and opens bob's by its id
            page.goto(f"{served.url}/jobs")
            listed = page.locator("table").inner_text()
            response = page.goto(f"{served.url}/jobs/{bobs.id}")
            # Then she sees only hers, and bob's is not found
            assert "Alice's export" in listed and "Bob's payroll" not in listed
            assert response is not None and response.status == 404
            assert "JobNotFound" in page.locator("h1").inner_text()
            assert page.goto(f"{served.url}/jobs/{alices.id}").status == 200  # type: ignore[union-attr]
        finally:
            context.close()


def test_the_trigger_form_shows_validation_errors_by_field(served: Served, page: Any, mill: Mill,
                                                             shots: Path) -> None:
    page.goto(f"{served.url}/tasks")
    form = page.locator("#task-Export form")
    form.locator("input[name=rows]").fill("5000")
    form.locator("button.primary").click()
    page.locator(".field-error[data-field=rows]").wait_for()
    assert page.locator(".field-error[data-field=name]").inner_text() == "Field required"
    assert mill.jobs() == []
    page.locator("#task-Export").screenshot(path=str(shots / "trigger-form-errors.png"))


def test_screenshots_of_the_overview_jobs_and_tasks(
        served: Served, page: Any, mill: Mill, shots: Path) -> None:
    # Given some history: successes, a failure, a cancelled and a running job, in two queues
    for a in range(6):
        mill.enqueue("add", kwargs={"a": a}, title=f"Invoice batch {a}", owner="user:ops")
    mill.enqueue("Export", kwargs={"name": "orders", "rows": 200}, queue="reports", title="Orders export")
    failed = mill.enqueue("boom", kwargs={"message": "SMTP server refused the connection"}, title="Send mail")
    failed.wait(timeout=10)
    cancelled = mill.enqueue("add", kwargs={"a": 1}, delay=600, title="Reminder")
    mill.cancel(cancelled.id, "not needed any more")
    mill.enqueue("slow", kwargs={"steps": 100, "pause": 0.2}, title="Reindex search")
    wait_for(lambda: mill.jobs(state="running"))
    for name, path in (("overview", "/"), ("jobs", "/jobs"), ("tasks", "/tasks")):
        page.goto(f"{served.url}{path}")
        page.screenshot(path=str(shots / f"{name}.png"), full_page=name != "tasks")
    assert page.locator("#task-Export").is_visible()
    running = mill.jobs(state="running")
    for job in running:
        mill.cancel(job.id)
