"""The HTTP API under /api: every endpoint and every error status, against a real SQLite store and
a real worker."""

from __future__ import annotations

import json

from starlette.testclient import TestClient

from taskmill import Mill
from taskmill.web.models import JobOut
from taskmill.worker import Worker

from .conftest import wait_for


def run_all(mill: Mill) -> None:
    mill.worker(poll="50ms").run(burst=True)


def error_of(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message", "fields"}
    return body["error"]  # type: ignore[no-any-return]


# -- POST /api/jobs --------------------------------------------------------------------------------

def test_enqueue_answers_201_with_the_job_under_the_handles_field_names(
        client: TestClient, mill: Mill) -> None:
    # Given a task add(a, b=2)
    # When a job is posted with its kwargs and options
    response = client.post("/api/jobs", json={"task": "add", "kwargs": {"a": 40}, "title": "Sum",
                                              "priority": 3, "result_url": "/done/{id}"})
    # Then it is stored and answered as the job's JSON
    assert response.status_code == 201
    job = response.json()
    assert job == JobOut.of(mill.get(job["id"])).model_dump(mode="json")  # type: ignore[arg-type]
    assert job["state"] == "queued" and job["title"] == "Sum" and job["priority"] == 3
    assert job["kwargs"] == {"a": 40} and job["progress"] == 0 and job["result_url"] == "/done/{id}"
    assert set(job) == set(mill.get(job["id"]).to_json())  # type: ignore[union-attr]


def test_enqueue_with_a_delay_schedules_the_job(client: TestClient) -> None:
    response = client.post("/api/jobs", json={"task": "add", "kwargs": {"a": 1}, "delay": "5m"})
    assert response.status_code == 201
    assert response.json()["state"] == "scheduled"


def test_enqueue_of_an_unknown_task_is_422_naming_the_task_field(client: TestClient) -> None:
    response = client.post("/api/jobs", json={"task": "nope", "kwargs": {}})
    assert response.status_code == 422
    error = error_of(response)
    assert error["type"] == "UnknownTask"
    assert error["fields"] == [{"loc": ["task"], "msg": "unknown task 'nope'", "type": "unknown_task"}]


def test_enqueue_with_invalid_input_is_422_with_the_field_errors(client: TestClient, mill: Mill) -> None:
    # Given the class task Export whose input model needs a name and 1 <= rows <= 1000
    # When it is posted with bad input
    response = client.post("/api/jobs", json={"task": "Export", "kwargs": {"rows": 0}})
    # Then nothing is stored and each bad field is named
    assert response.status_code == 422
    error = error_of(response)
    assert error["type"] == "InvalidInput"
    locs = sorted(tuple(f["loc"]) for f in error["fields"])  # type: ignore[union-attr, index]
    assert locs == [("name",), ("rows",)]
    assert mill.jobs() == []


def test_enqueue_with_a_badly_typed_argument_is_422(client: TestClient) -> None:
    response = client.post("/api/jobs", json={"task": "add", "kwargs": {"a": "forty"}})
    assert response.status_code == 422
    assert error_of(response)["fields"][0]["loc"] == ["a"]  # type: ignore[index]


def test_a_body_that_is_not_json_or_not_the_model_is_422(client: TestClient) -> None:
    not_json = client.post("/api/jobs", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and error_of(not_json)["fields"][0]["type"] == "json_invalid"  # type: ignore[index]
    unknown_field = client.post("/api/jobs", json={"task": "add", "kwargs": {"a": 1}, "colour": "red"})
    assert unknown_field.status_code == 422
    assert error_of(unknown_field)["fields"][0]["loc"] == ["body", "colour"]  # type: ignore[index]


def test_an_impossible_schedule_is_422(client: TestClient) -> None:
    response = client.post("/api/jobs", json={"task": "add", "kwargs": {"a": 1}, "delay": -5})
    assert response.status_code == 422
    assert error_of(response)["type"] == "ScheduleError"


def test_a_parent_that_does_not_exist_is_422_naming_the_parent_field(client: TestClient) -> None:
    response = client.post("/api/jobs", json={"task": "add", "kwargs": {"a": 1}, "parent": "999"})
    assert response.status_code == 422
    assert error_of(response)["fields"][0]["loc"] == ["parent"]  # type: ignore[index]


# -- GET /api/jobs ---------------------------------------------------------------------------------

def test_list_filters_like_mill_jobs_and_pages_with_the_cursor(client: TestClient, mill: Mill) -> None:
    # Given five add jobs and one boom job in the queue "other"
    ids = [mill.enqueue("add", kwargs={"a": i}).id for i in range(5)]
    mill.enqueue("boom", queue="other")
    # When listing add jobs two at a time
    first = client.get("/api/jobs", params={"task": "add", "limit": 2}).json()
    second = client.get("/api/jobs", params={"task": "add", "limit": 2, "after": first["next"]}).json()
    third = client.get("/api/jobs", params={"task": "add", "limit": 2, "after": second["next"]}).json()
    # Then the pages hold them newest first, and the last page has no next cursor
    seen = [j["id"] for page in (first, second, third) for j in page["items"]]
    assert seen == list(reversed(ids))
    assert third["next"] is None
    assert [j["task"] for j in client.get("/api/jobs?queue=other").json()["items"]] == ["boom"]


def test_list_filters_by_one_or_more_states(client: TestClient, mill: Mill) -> None:
    mill.enqueue("add", kwargs={"a": 1})
    mill.enqueue("add", kwargs={"a": 1}, delay=600)
    assert [j["state"] for j in client.get("/api/jobs?state=scheduled").json()["items"]] == ["scheduled"]
    both = client.get("/api/jobs?state=scheduled,queued").json()["items"]
    assert sorted(j["state"] for j in both) == ["queued", "scheduled"]
    repeated = client.get("/api/jobs?state=scheduled&state=queued").json()["items"]
    assert len(repeated) == 2


def test_a_cursor_or_parent_beyond_any_id_gives_an_empty_page(client: TestClient, mill: Mill) -> None:
    mill.enqueue("add", kwargs={"a": 1})
    assert client.get("/api/jobs", params={"parent": "9" * 30}).json() == {"items": [], "next": None}
    assert client.get("/api/jobs", params={"after": "9" * 30}).status_code == 200


def test_list_with_a_bad_filter_is_422(client: TestClient) -> None:
    assert client.get("/api/jobs?state=sleeping").status_code == 422
    assert client.get("/api/jobs?limit=0").status_code == 422
    assert error_of(client.get("/api/jobs?limit=many"))["fields"][0]["loc"] == ["query", "limit"]  # type: ignore[index]


def test_list_by_parent_gives_the_child_jobs(client: TestClient, mill: Mill) -> None:
    parent = mill.enqueue("parent_of_two")
    run_all(mill)
    children = client.get("/api/jobs", params={"parent": parent.id}).json()["items"]
    assert sorted(c["kwargs"]["a"] for c in children) == [1, 2]


# -- GET /api/jobs/{id}, logs ----------------------------------------------------------------------

def test_get_a_job_gives_its_result_after_it_ran(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 40})
    run_all(mill)
    body = client.get(f"/api/jobs/{job.id}").json()
    assert body["state"] == "succeeded" and body["result"] == 42 and body["attempts"] == 1


def test_a_failed_job_has_its_error_with_the_traceback(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("boom", kwargs={"message": "bad disk"})
    run_all(mill)
    error = client.get(f"/api/jobs/{job.id}").json()["error"]
    assert error["type"] == "ValueError" and error["message"] == "bad disk"
    assert "raise ValueError(message)" in error["traceback"]


def test_get_an_unknown_job_is_404(client: TestClient) -> None:
    huge = "9" * 30  # more than any store's integer
    for path in ("/api/jobs/999", "/api/jobs/not-a-number", "/api/jobs/999/logs", "/api/jobs/999/events",
                 f"/api/jobs/{huge}", f"/api/jobs/{huge}/logs"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert error_of(response)["type"] == "JobNotFound"


def test_logs_lists_the_lines_oldest_first_and_limit_keeps_the_last(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("slow", kwargs={"steps": 3, "pause": 0})
    run_all(mill)
    lines = client.get(f"/api/jobs/{job.id}/logs").json()
    assert [line["message"] for line in lines["items"]] == [f"did step {i} of 3" for i in (1, 2, 3)]
    assert lines["next"] is None
    assert set(lines["items"][0]) == {"at", "level", "message", "attempt"}
    last = client.get(f"/api/jobs/{job.id}/logs?limit=1").json()["items"]
    assert [line["message"] for line in last] == ["did step 3 of 3"]
    assert client.get(f"/api/jobs/{job.id}/logs?limit=0").status_code == 422


# -- cancel, retry, delete -------------------------------------------------------------------------

def test_cancel_of_a_queued_job_means_it_never_runs(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    response = client.post(f"/api/jobs/{job.id}/cancel", json={"reason": "not needed"})
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled" and response.json()["cancel_reason"] == "not needed"
    run_all(mill)
    assert mill.get(job.id).state == "cancelled"  # type: ignore[union-attr]


def test_cancel_takes_no_body_too(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    assert client.post(f"/api/jobs/{job.id}/cancel").json()["state"] == "cancelled"


def test_cancel_of_a_running_job_stops_it(client: TestClient, mill: Mill, worker: Worker) -> None:
    # Given a slow job that is running
    job = mill.enqueue("slow", kwargs={"steps": 100, "pause": 0.05})
    wait_for(lambda: mill.get(job.id).progress > 0)  # type: ignore[union-attr]
    # When it is cancelled over the API
    assert client.post(f"/api/jobs/{job.id}/cancel", json={"reason": "enough"}).status_code == 200
    # Then it ends cancelled with the reason
    done = job.wait(timeout=10)
    assert done.state == "cancelled" and done.cancel_reason == "enough"


def test_cancel_of_a_finished_job_is_409_and_of_an_unknown_one_404(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    run_all(mill)
    conflict = client.post(f"/api/jobs/{job.id}/cancel")
    assert conflict.status_code == 409 and error_of(conflict)["type"] == "InvalidTransition"
    assert client.post("/api/jobs/999/cancel").status_code == 404
    assert client.post(f"/api/jobs/{job.id}/cancel", json={"reason": 5}).status_code == 422


def test_retry_runs_a_failed_job_again_with_one_more_attempt(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("boom")
    run_all(mill)
    response = client.post(f"/api/jobs/{job.id}/retry")
    assert response.status_code == 200 and response.json()["state"] == "queued"
    run_all(mill)
    again = client.get(f"/api/jobs/{job.id}").json()
    assert again["state"] == "failed" and again["attempts"] == 2


def test_retry_of_an_unfinished_job_is_409_and_of_an_unknown_one_404(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    assert client.post(f"/api/jobs/{job.id}/retry").status_code == 409
    assert client.post("/api/jobs/999/retry").status_code == 404


def test_delete_removes_a_job_with_its_logs(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    run_all(mill)
    assert client.delete(f"/api/jobs/{job.id}").status_code == 204
    assert mill.get(job.id) is None
    assert client.delete(f"/api/jobs/{job.id}").status_code == 404


def test_delete_of_a_running_job_is_409(client: TestClient, mill: Mill, worker: Worker) -> None:
    job = mill.enqueue("slow", kwargs={"steps": 100, "pause": 0.05})
    wait_for(lambda: mill.get(job.id).state == "running")  # type: ignore[union-attr]
    response = client.delete(f"/api/jobs/{job.id}")
    assert response.status_code == 409 and error_of(response)["type"] == "InvalidTransition"
    mill.cancel(job.id)


# -- tasks, stats ----------------------------------------------------------------------------------

def test_tasks_lists_the_definitions_with_their_input_schema(client: TestClient) -> None:
    tasks = {t["name"]: t for t in client.get("/api/tasks").json()["items"]}
    assert set(tasks) == {"Export", "add", "boom", "parent_of_two", "slow", "tick"}
    assert tasks["Export"]["input_schema"]["required"] == ["name"]
    assert tasks["add"]["input_schema"]["properties"]["a"] == {"type": "integer"}
    assert tasks["tick"]["periodic"] == {"every": 3600.0}


def test_stats_counts_jobs_per_queue_with_every_state(client: TestClient, mill: Mill) -> None:
    mill.enqueue("add", kwargs={"a": 1})
    mill.enqueue("boom")
    mill.enqueue("add", kwargs={"a": 1}, queue="other")
    run_all(mill)
    mill.enqueue("add", kwargs={"a": 1})
    stats = client.get("/api/stats").json()
    assert stats["default"] == {"scheduled": 0, "queued": 1, "running": 0, "succeeded": 1,
                                "failed": 1, "cancelled": 0}
    assert stats["other"]["succeeded"] == 1 and stats["maintenance"]["queued"] == 0


# -- events ----------------------------------------------------------------------------------------

def read_events(text: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_events_send_progress_on_each_change_and_end_after_the_terminal_one(
        client: TestClient, mill: Mill, worker: Worker) -> None:
    # Given a job that reports progress five times, a worker running it
    job = mill.enqueue("slow", kwargs={"steps": 5, "pause": 0.3})
    # When the events stream is read to its end
    with client.stream("GET", f"/api/jobs/{job.id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response.read().decode())
    # Then every event is a progress event with the job JSON, progress grows, and the last is terminal
    assert {name for name, _ in events} == {"progress"}
    progress = [data["progress"] for _, data in events]
    assert progress == sorted(progress) and len(set(progress)) >= 3
    assert events[-1][1]["state"] == "succeeded" and events[-1][1]["result"] == {"steps": 5}
    assert sum(1 for _, data in events if data["state"] == "succeeded") == 1


def test_events_with_logs_send_each_log_line_once(client: TestClient, mill: Mill, worker: Worker) -> None:
    job = mill.enqueue("slow", kwargs={"steps": 4, "pause": 0.2})
    with client.stream("GET", f"/api/jobs/{job.id}/events?logs=true") as response:
        events = read_events(response.read().decode())
    lines = [data["message"] for name, data in events if name == "log"]
    assert lines == [f"did step {i} of 4" for i in range(1, 5)]


def test_events_of_a_finished_job_send_one_event_and_end(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    run_all(mill)
    events = read_events(client.get(f"/api/jobs/{job.id}/events").text)
    assert [(name, data["state"]) for name, data in events] == [("progress", "succeeded")]


# -- openapi, health, metrics, unknown routes ------------------------------------------------------

def test_openapi_describes_every_endpoint_of_the_design(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    operations = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert operations == {
        ("GET", "/api/jobs"), ("POST", "/api/jobs"), ("GET", "/api/jobs/{id}"),
        ("GET", "/api/jobs/{id}/logs"), ("POST", "/api/jobs/{id}/cancel"),
        ("POST", "/api/jobs/{id}/retry"), ("DELETE", "/api/jobs/{id}"), ("GET", "/api/tasks"),
        ("GET", "/api/stats"), ("GET", "/api/jobs/{id}/events"), ("GET", "/api/openapi.json"),
    }
    enqueue = document["paths"]["/api/jobs"]["post"]
    assert enqueue["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EnqueueRequest"}
    assert set(enqueue["responses"]) >= {"201", "422"}
    assert "JobOut" in document["components"]["schemas"]


def test_healthz_is_ok_and_open_to_anyone(mill: Mill) -> None:
    from taskmill.web import create_app

    with TestClient(create_app(mill, token="s3cret"), client=("203.0.113.9", 1)) as remote:
        response = remote.get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_metrics_give_jobs_by_state_and_queue_and_event_counters(
        client: TestClient, mill: Mill) -> None:
    # Given jobs enqueued and run in this process
    mill.enqueue("add", kwargs={"a": 1})
    mill.enqueue("boom")
    run_all(mill)
    # When Prometheus scrapes
    text = client.get("/metrics").text
    # Then the gauges come from the store and the counters from the events
    assert 'taskmill_jobs{queue="default",state="succeeded"} 1.0' in text
    assert 'taskmill_jobs{queue="default",state="failed"} 1.0' in text
    assert 'taskmill_job_events_total{event="enqueued",queue="default",task="add"} 1.0' in text
    assert 'taskmill_job_failures_total{error="ValueError",task="boom"} 1.0' in text
    assert "taskmill_job_run_seconds_count" in text


def test_an_unknown_api_route_is_a_json_404_and_a_wrong_method_405(client: TestClient) -> None:
    assert error_of(client.get("/api/nothing"))["type"] == "HTTPError"
    assert client.get("/api/nothing").status_code == 404
    assert client.put("/api/jobs").status_code == 405
