"""The dashboard's server-rendered pages and forms, read as HTML (the browser tests click them)."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from taskmill import Mill
from taskmill.web import create_app

from .conftest import LOOPBACK
from .test_security import csrf_of


def run_all(mill: Mill) -> None:
    mill.worker(poll="50ms").run(burst=True)


def test_the_overview_counts_jobs_per_state_and_queue_and_charts_the_last_hour(
        client: TestClient, mill: Mill) -> None:
    # Given two finished jobs and a queued one in another queue
    mill.enqueue("add", kwargs={"a": 1})
    mill.enqueue("boom")
    run_all(mill)
    mill.enqueue("add", kwargs={"a": 1}, queue="reports")
    # When the overview is read
    html = client.get("/").text
    # Then it has the totals, one row per queue, and a bar chart of the finished jobs
    assert re.search(r'data-count="succeeded">1<', html) and re.search(r'data-count="queued">1<', html)
    assert '<a href="/jobs?queue=reports">reports</a>' in html
    assert html.count('<rect class="ok"') == 12
    assert re.search(r'<rect class="ok" [^>]*height="50\.0"', html)
    assert re.search(r'<rect class="bad" [^>]*height="50\.0"', html)
    assert "peak 2 / 5 min" in html


def test_the_overview_lists_periodic_tasks_and_queues_with_their_buttons(client: TestClient) -> None:
    html = client.get("/").text
    assert "every 1h" in html and 'action="/periodic/tick/stop"' in html
    assert 'action="/queues/maintenance/pause"' in html


def test_the_jobs_list_filters_by_state_queue_task_and_owner(client: TestClient, mill: Mill) -> None:
    mill.enqueue("add", kwargs={"a": 1}, owner="user:1", title="first")
    mill.enqueue("boom", queue="other", title="second")
    assert "first" in client.get("/jobs?owner=user:1").text
    assert "second" not in client.get("/jobs?owner=user:1").text
    assert "second" in client.get("/jobs?queue=other").text
    assert "first" not in client.get("/jobs?task=boom").text
    assert "No jobs." in client.get("/jobs?state=running").text
    assert client.get("/jobs?state=sleeping").status_code == 422


def test_the_jobs_list_pages_with_the_cursor(client: TestClient, mill: Mill) -> None:
    for i in range(55):
        mill.enqueue("add", kwargs={"a": i})
    first = client.get("/jobs").text
    assert first.count('href="/jobs/') == 50
    next_href = re.search(r'href="(\?after=[^"]+)" rel="next"', first)
    assert next_href
    second = client.get("/jobs" + next_href.group(1).replace("&amp;", "&")).text
    assert second.count('href="/jobs/') == 5 and 'rel="next"' not in second and "first page" in second


def test_the_job_id_box_goes_to_the_job(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    response = client.get(f"/jobs?id={job.id}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/jobs/{job.id}"


def test_the_job_page_shows_arguments_result_attempts_and_logs(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("slow", kwargs={"steps": 2, "pause": 0}, title="Counting")
    run_all(mill)
    html = client.get(f"/jobs/{job.id}").text
    assert "Counting" in html and "succeeded" in html
    assert "&#34;steps&#34;: 2" in html
    assert 'id="result"' in html and "1 of 1 (0 left)" in html
    assert "did step 2 of 2" in html
    assert f'action="/jobs/{job.id}/retry"' in html and f'action="/jobs/{job.id}/delete"' in html
    assert "/cancel" not in html
    assert "data-events" not in html  # finished: nothing to follow


def test_the_job_page_of_a_failed_job_shows_the_error_and_traceback(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("boom", kwargs={"message": "disk full"})
    run_all(mill)
    html = client.get(f"/jobs/{job.id}").text
    assert "<strong>ValueError</strong>: disk full" in html
    assert 'class="traceback"' in html and "raise ValueError(message)" in html


def test_the_job_page_of_a_waiting_job_follows_its_events_and_offers_cancel(
        client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    html = client.get(f"/jobs/{job.id}").text
    assert f'data-events="/api/jobs/{job.id}/events?logs=true"' in html
    assert f'action="/jobs/{job.id}/cancel"' in html and "/retry" not in html


def test_the_job_page_links_parent_and_children(client: TestClient, mill: Mill) -> None:
    parent = mill.enqueue("parent_of_two")
    run_all(mill)
    html = client.get(f"/jobs/{parent.id}").text
    assert "Child jobs" in html
    child = mill.jobs(parent=parent.id)[0]
    assert f'href="/jobs/{parent.id}">parent_of_two #{parent.id}</a>' in client.get(f"/jobs/{child.id}").text


def test_an_unknown_job_page_is_404(client: TestClient) -> None:
    assert client.get("/jobs/999").status_code == 404
    assert client.get("/jobs/999/progress").status_code == 404


def test_retry_cancel_and_remove_buttons_do_what_they_say(client: TestClient, mill: Mill) -> None:
    token = csrf_of(client)
    failed = mill.enqueue("boom")
    run_all(mill)
    retried = client.post(f"/jobs/{failed.id}/retry", data={"csrf_token": token}, follow_redirects=False)
    assert retried.status_code == 303 and retried.headers["location"] == f"/jobs/{failed.id}?done=retried"
    assert mill.get(failed.id).state == "queued"  # type: ignore[union-attr]
    assert client.post(f"/jobs/{failed.id}/cancel", data={"csrf_token": token}).status_code == 200
    assert mill.get(failed.id).state == "cancelled"  # type: ignore[union-attr]
    removed = client.post(f"/jobs/{failed.id}/delete", data={"csrf_token": token})
    assert removed.status_code == 200 and "Job removed." in removed.text
    assert mill.get(failed.id) is None


def test_a_button_for_a_transition_not_allowed_shows_409(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    response = client.post(f"/jobs/{job.id}/retry", data={"csrf_token": csrf_of(client)})
    assert response.status_code == 409 and "InvalidTransition" in response.text


def test_the_trigger_form_is_built_from_the_input_schema(client: TestClient) -> None:
    html = client.get("/tasks").text
    export = html[html.index('id="task-Export"'):html.index('id="task-add"')]
    assert 'name="name"' in export and 'name="rows" value="10"' in export
    assert re.search(r'<select id="Export-format" name="format">', export)
    assert '<option value="json">json</option>' in export
    assert 'type="checkbox" id="Export-gzip" name="gzip"' in export
    assert '<span class="req">*</span>' in export  # name is required


def test_a_trigger_form_with_bad_input_shows_the_errors_by_field(client: TestClient, mill: Mill) -> None:
    # Given the Export form
    token = csrf_of(client)
    # When it is posted with no name and too many rows
    response = client.post("/tasks/Export", data={"csrf_token": token, "name": "", "rows": "5000",
                                                   "format": "csv"})
    # Then the form comes back with each error beside its field, what was typed kept, nothing stored
    assert response.status_code == 422
    assert re.search(r'data-field="rows">Input should be less than or equal to 1000<', response.text)
    assert re.search(r'data-field="name">Field required<', response.text)
    assert 'name="rows" value="5000"' in response.text
    assert mill.jobs() == []


def test_a_trigger_form_with_a_bad_option_says_so(client: TestClient, mill: Mill) -> None:
    response = client.post("/tasks/add", data={"csrf_token": csrf_of(client), "a": "1",
                                                "option.delay": "soon"})
    assert response.status_code == 422 and 'class="errors"' in response.text
    assert mill.jobs() == []


def test_a_trigger_form_enqueues_and_goes_to_the_job(client: TestClient, mill: Mill) -> None:
    response = client.post("/tasks/Export", data={"csrf_token": csrf_of(client), "name": "orders",
                                                  "rows": "20", "format": "json", "gzip": "true",
                                                  "option.title": "Orders export"},
                           follow_redirects=False)
    job = mill.jobs()[0]
    assert response.status_code == 303 and response.headers["location"] == f"/jobs/{job.id}"
    assert job.kwargs == {"name": "orders", "rows": 20, "format": "json", "gzip": True}
    assert job.title == "Orders export" and job.owner is None


def test_a_trigger_form_with_a_result_url_goes_to_the_progress_page(client: TestClient, mill: Mill) -> None:
    response = client.post("/tasks/add", data={"csrf_token": csrf_of(client), "a": "1",
                                               "option.result_url": "/jobs/{id}"}, follow_redirects=False)
    job = mill.jobs()[0]
    assert response.headers["location"] == f"/jobs/{job.id}/progress"


def test_the_progress_page_of_a_succeeded_job_goes_on_to_its_result_url(
        client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1}, result_url="/reports/{id}/download")
    html = client.get(f"/jobs/{job.id}/progress").text
    assert f'data-result="/reports/{job.id}/download"' in html and "Waiting to start" in html
    run_all(mill)
    response = client.get(f"/jobs/{job.id}/progress", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/reports/{job.id}/download"


def test_the_progress_page_of_a_failed_job_shows_the_error_and_the_way_back(
        client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("boom", kwargs={"message": "no paper"}, title="Print", return_url="/printers")
    run_all(mill)
    html = client.get(f"/jobs/{job.id}/progress").text
    assert "It failed." in html and "no paper" in html
    assert '<a id="return" class="button" href="/printers">' in html


def test_the_progress_page_of_a_cancelled_job_says_why(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1}, return_url="/back")
    mill.cancel(job.id, "changed my mind")
    html = client.get(f"/jobs/{job.id}/progress").text
    assert "It was cancelled." in html and "changed my mind" in html and 'href="/back"' in html


def test_periodic_tasks_stop_and_start_from_their_buttons(client: TestClient, mill: Mill) -> None:
    token = csrf_of(client)
    client.post("/periodic/tick/stop", data={"csrf_token": token})
    assert [p["enabled"] for p in mill.periodic()] == [False]
    assert "stopped" in client.get("/tasks").text
    client.post("/periodic/tick/start", data={"csrf_token": token})
    assert [p["enabled"] for p in mill.periodic()] == [True]
    assert client.post("/periodic/add/stop", data={"csrf_token": token}).status_code == 422


def test_queues_pause_and_resume_from_their_buttons(client: TestClient, mill: Mill) -> None:
    token = csrf_of(client)
    client.post("/queues/default/pause", data={"csrf_token": token})
    assert mill.paused_queues() == {"default"}
    assert "paused" in client.get("/").text
    client.post("/queues/default/resume", data={"csrf_token": token})
    assert mill.paused_queues() == set()


def test_the_app_mounted_under_a_prefix_links_within_it(mill: Mill) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/ops/tasks", app=create_app(mill))])
    job = mill.enqueue("add", kwargs={"a": 1})
    with TestClient(outer, client=LOOPBACK, base_url="http://127.0.0.1") as browser:
        html = browser.get(f"/ops/tasks/jobs/{job.id}").text
        assert 'href="/ops/tasks/static/style.css"' in html
        assert f'data-events="/ops/tasks/api/jobs/{job.id}/events?logs=true"' in html
        assert browser.get("/ops/tasks/api/jobs").json()["items"][0]["id"] == job.id
        assert browser.get("/ops/tasks/static/app.js").status_code == 200
