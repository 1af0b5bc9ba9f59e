"""GraphQL at /graphql: each Webiny operation, errors, and the depth and cost limits."""

from __future__ import annotations

import json
from typing import Any

from starlette.testclient import TestClient

from taskmill import Mill
from taskmill.web.graphql import MAX_COST, MAX_DEPTH

DELETE = "mutation($id: ID!) { delete(id: $id) }"


def gql(client: TestClient, query: str, status: int = 200, **variables: Any) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


def run_all(mill: Mill) -> None:
    mill.worker(poll="50ms").run(burst=True)


def test_definitions_lists_the_tasks_with_their_input_schema(client: TestClient) -> None:
    data = gql(client, "{ definitions { name queue periodic input_schema } }")["data"]
    by_name = {d["name"]: d for d in data["definitions"]}
    assert set(by_name) == {"Export", "add", "boom", "parent_of_two", "slow", "tick"}
    assert by_name["tick"]["periodic"] == {"every": 3600.0}
    assert by_name["Export"]["input_schema"]["required"] == ["name"]


def test_trigger_enqueues_with_input_delay_parent_and_title(client: TestClient, mill: Mill) -> None:
    # Given a parent job
    parent = mill.enqueue("add", kwargs={"a": 1})
    # When a run is triggered with all the Webiny arguments
    data = gql(client, """
        mutation($input: JSON, $parent: ID) {
          trigger(task: "Export", input: $input, delay: "5m", parent: $parent, title: "Nightly export") {
            id state input title parent task
          }
        }""", input={"name": "orders", "rows": 20}, parent=parent.id)["data"]["trigger"]
    # Then it is stored as asked
    assert data["state"] == "scheduled" and data["title"] == "Nightly export"
    assert data["parent"] == parent.id and data["input"] == {"name": "orders", "rows": 20,
                                                             "format": "csv", "gzip": False}
    stored = mill.get(data["id"])
    assert stored is not None and stored.title == "Nightly export"


def test_trigger_takes_a_delay_in_seconds_too(client: TestClient) -> None:
    data = gql(client, 'mutation { trigger(task: "add", input: {a: 1}, delay: "30") { state } }')
    assert data["data"]["trigger"]["state"] == "scheduled"


def test_trigger_with_invalid_input_is_an_error_with_the_field_errors(client: TestClient, mill: Mill) -> None:
    body = gql(client, 'mutation { trigger(task: "Export", input: {rows: 0}) { id } }')
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["type"] == "InvalidInput" and error["extensions"]["status"] == 422
    assert sorted(f["loc"][0] for f in error["extensions"]["fields"]) == ["name", "rows"]
    assert mill.jobs() == []


def test_trigger_of_an_unknown_task_is_an_unknown_task_error(client: TestClient) -> None:
    error = gql(client, 'mutation { trigger(task: "nope") { id } }')["errors"][0]
    assert error["extensions"]["type"] == "UnknownTask"


def test_runs_lists_runs_with_status_timestamps_iterations_input_and_output(
        client: TestClient, mill: Mill) -> None:
    # Given three finished runs
    for a in (1, 2, 3):
        mill.enqueue("add", kwargs={"a": a})
    run_all(mill)
    # When listing them two at a time
    query = """query($after: String) { runs(limit: 2, after: $after, filter: {task: "add"}) {
        items { id state created_at started_at finished_at iterations input output }
        next } }"""
    first = gql(client, query)["data"]["runs"]
    second = gql(client, query, after=first["next"])["data"]["runs"]
    # Then each page holds runs with their fields, and the cursor pages on
    runs = first["items"] + second["items"]
    assert [r["input"]["a"] for r in runs] == [3, 2, 1]
    assert [r["output"] for r in runs] == [5, 4, 3]
    assert all(r["state"] == "succeeded" and r["iterations"] == 1 and r["finished_at"] for r in runs)
    assert second["next"] is None


def test_runs_filter_by_state(client: TestClient, mill: Mill) -> None:
    mill.enqueue("add", kwargs={"a": 1})
    mill.enqueue("add", kwargs={"a": 1}, delay=600)
    items = gql(client, "{ runs(filter: {state: [scheduled]}) { items { state } } }")["data"]["runs"]["items"]
    assert items == [{"state": "scheduled"}]


def test_run_gives_one_run_with_its_error_logs_and_children(client: TestClient, mill: Mill) -> None:
    failed = mill.enqueue("boom", kwargs={"message": "no disk"})
    parent = mill.enqueue("parent_of_two")
    run_all(mill)
    run = gql(client, "query($id: ID!) { run(id: $id) { state error { type message traceback } "
                      "logs { level message } } }", id=failed.id)["data"]["run"]
    assert run["state"] == "failed" and run["error"]["type"] == "ValueError"
    assert run["error"]["message"] == "no disk" and "Traceback" in run["error"]["traceback"]
    assert run["logs"] == [{"level": "ERROR", "message": "about to fail"}]
    family = gql(client, "query($id: ID!) { run(id: $id) { output children { task parent } } }",
                 id=parent.id)["data"]["run"]
    assert family["output"] == "spawned"
    assert family["children"] == [{"task": "add", "parent": parent.id}] * 2


def test_run_of_an_unknown_id_is_null(client: TestClient) -> None:
    assert gql(client, '{ run(id: "999") { id } }')["data"] == {"run": None}


def test_logs_lists_a_jobs_lines_and_limit_keeps_the_last(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("slow", kwargs={"steps": 3, "pause": 0})
    run_all(mill)
    query = "query($id: ID!, $n: Int) { logs(jobId: $id, limit: $n) { message attempt job_id } }"
    lines = gql(client, query, id=job.id)["data"]["logs"]
    assert [line["message"] for line in lines] == [f"did step {i} of 3" for i in (1, 2, 3)]
    assert lines[0]["attempt"] == 1 and lines[0]["job_id"] == job.id
    last = gql(client, query, id=job.id, n=1)["data"]["logs"]
    assert [line["message"] for line in last] == ["did step 3 of 3"]
    missing = gql(client, '{ logs(jobId: "999") { message } }')["errors"][0]
    assert missing["extensions"]["status"] == 404


def test_abort_cancels_with_the_message(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    data = gql(client, 'mutation($id: ID!) { abort(id: $id, message: "wrong file") { state cancel_reason } }',
               id=job.id)
    assert data["data"]["abort"] == {"state": "cancelled", "cancel_reason": "wrong file"}


def test_abort_of_a_finished_run_is_a_409_error(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    run_all(mill)
    error = gql(client, "mutation($id: ID!) { abort(id: $id) { state } }", id=job.id)["errors"][0]
    assert error["extensions"]["type"] == "InvalidTransition" and error["extensions"]["status"] == 409


def test_retry_runs_a_failed_run_again(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("boom")
    run_all(mill)
    data = gql(client, "mutation($id: ID!) { retry(id: $id) { state attempts_left } }", id=job.id)
    assert data["data"]["retry"] == {"state": "queued", "attempts_left": 1}


def test_delete_removes_a_run(client: TestClient, mill: Mill) -> None:
    job = mill.enqueue("add", kwargs={"a": 1})
    assert gql(client, DELETE, id=job.id)["data"] == {"delete": True}
    assert mill.get(job.id) is None
    error = gql(client, DELETE, id=job.id)["errors"][0]
    assert error["extensions"]["status"] == 404


def test_queries_work_over_get_but_mutations_need_post(client: TestClient, mill: Mill) -> None:
    assert client.get("/graphql", params={"query": "{ definitions { name } }"}).status_code == 200
    job = mill.enqueue("add", kwargs={"a": 1})
    refused = client.get("/graphql", params={"query": DELETE, "variables": json.dumps({"id": job.id})})
    assert refused.status_code == 405
    assert mill.get(job.id) is not None


def test_a_post_that_is_not_json_is_refused(client: TestClient) -> None:
    response = client.post("/graphql", data={"query": "{ definitions { name } }"})
    assert response.status_code == 415


def test_a_query_deeper_than_the_limit_is_refused_before_it_runs(client: TestClient) -> None:
    nested = "id"
    for _ in range(MAX_DEPTH):
        nested = f"children(limit: 1) {{ {nested} }}"
    body = gql(client, '{ run(id: "1") { ' + nested + " } }", status=400)
    assert "levels deep" in body["errors"][0]["message"]


def test_a_query_costlier_than_the_limit_is_refused_before_it_runs(client: TestClient) -> None:
    # 1000 runs, each with 100 log lines and 100 children: far over the budget
    query = "{ runs(limit: 1000) { items { id logs(limit: 100) { message } children { id } } } }"
    body = gql(client, query, status=400)
    assert "costs" in body["errors"][0]["message"] and str(MAX_COST) in body["errors"][0]["message"]


def test_the_cost_counts_limits_given_as_variables_and_fragments(client: TestClient) -> None:
    query = """query($n: Int) { runs(limit: $n) { items { ...R } } }
               fragment R on Run { logs(limit: 1000) { message } }"""
    assert gql(client, query, status=400, n=1000)["errors"][0]["message"].startswith("the query costs")
    assert "data" in gql(client, query, n=1)


def test_introspection_is_allowed(client: TestClient) -> None:
    body = gql(client, "{ __schema { queryType { name } mutationType { name } } }")
    assert body["data"]["__schema"] == {"queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"}}


def test_an_invalid_query_is_400_with_the_reason(client: TestClient) -> None:
    assert "Cannot query field" in gql(client, "{ nothing }", status=400)["errors"][0]["message"]
    assert gql(client, "{ runs(", status=400)["errors"][0]["message"].startswith("Syntax Error")
