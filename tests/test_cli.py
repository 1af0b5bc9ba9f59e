"""The `taskmill` command, run as a subprocess against a real temp SQLite file and a small app:
management commands, their output and exit codes, and their errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_helpers import Cli, make_cli, one_line_error

COMMANDS = ["run", "worker", "web", "enqueue", "ls", "show", "wait", "logs", "cancel", "retry", "rm",
            "purge", "stats", "queues", "queues pause", "queues resume", "periodic", "periodic ls",
            "periodic stop", "periodic start", "tasks", "new-task", "migrate"]


@pytest.fixture
def cli(tmp_path: Path, sqlite_url: str) -> Cli:
    return make_cli(tmp_path, sqlite_url)


# -- help, completion, app loading -------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_shows_an_example_and_the_common_options(cli: Cli, command: str) -> None:
    # When a command's help is asked for
    done = cli(*command.split(), "--help")
    # Then it shows an example and takes --app and --url
    assert done.returncode == 0, done.stderr
    assert "Example" in done.stdout
    assert "--app" in done.stdout and "--url" in done.stdout


def test_top_level_help_lists_the_commands_and_the_completion_line(cli: Cli) -> None:
    done = cli("--help")
    assert done.returncode == 0
    for command in ("run", "worker", "enqueue", "ls", "show", "new-task", "periodic", "queues"):
        assert f"  {command} " in done.stdout
    assert "_TASKMILL_COMPLETE=bash_source taskmill" in done.stdout


def test_shell_completion_comes_from_clicks_own_mechanism(cli: Cli) -> None:
    # Given the installed console script
    script = Path(sys.executable).parent / "taskmill"
    # When bash asks for the completion script, then it gets one
    import subprocess

    done = subprocess.run([str(script)], env={**cli.env, "_TASKMILL_COMPLETE": "bash_source"},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert "complete " in done.stdout and "_taskmill_completion" in done.stdout


def test_shell_completion_offers_the_apps_task_names(cli: Cli) -> None:
    import subprocess

    script = Path(sys.executable).parent / "taskmill"
    env = {**cli.env, "_TASKMILL_COMPLETE": "bash_complete", "COMP_WORDS": "taskmill enqueue b",
           "COMP_CWORD": "2"}
    done = subprocess.run([str(script)], env=env, cwd=cli.cwd, capture_output=True, text=True,
                          timeout=30)
    assert done.stdout.split() == ["plain,batches", "plain,boom"]


def test_app_and_url_may_also_come_before_the_command(cli: Cli, tmp_path: Path) -> None:
    cli.enqueue("add", "-k", "a=1")
    other = f"sqlite:///{tmp_path}/other.db"
    assert "no jobs" in cli("--url", other, "ls").stdout
    assert cli("--url", other, "queues", "pause", "q").returncode == 0
    queues = {q["name"]: q for q in json.loads(cli("--url", other, "queues", "--json").stdout)}
    assert queues["q"]["paused"] is True


def test_an_unknown_command_or_option_is_a_usage_error_with_exit_code_2(cli: Cli) -> None:
    assert cli("frobnicate").returncode == 2
    done = cli("ls", "--no-such-option")
    assert done.returncode == 2
    assert "No such option" in done.stderr


def test_an_app_that_cannot_be_imported_is_one_clear_line(cli: Cli) -> None:
    # When the app names a module that does not exist, then one line says so
    assert "cannot import 'nosuch'" in one_line_error(cli("tasks", "--app", "nosuch:mill"))
    # When the attribute is missing or not a Mill, then one line says so
    assert "has no attribute 'nope'" in one_line_error(cli("tasks", "--app", "testapp:nope"))
    assert "not a taskmill.Mill" in one_line_error(cli("tasks", "--app", "testapp:add"))
    # When the module raises at import, then one line names the error, and --debug shows it whole
    (cli.cwd / "brokenapp.py").write_text("raise RuntimeError('no config')\n")
    assert "RuntimeError: no config" in one_line_error(cli("tasks", "--app", "brokenapp:mill"))
    debug = cli("tasks", "--app", "brokenapp:mill", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_an_unreachable_store_is_one_clear_line(cli: Cli, tmp_path: Path) -> None:
    # Given a store URL in a folder that does not exist
    url = f"sqlite:///{tmp_path}/missing/folder/taskmill.db"
    # When any command uses it, then one line says the store is unreachable
    assert "the store is unreachable" in one_line_error(cli("ls", "--url", url))
    assert "the store is unreachable" in one_line_error(cli("enqueue", "add", "-k", "a=1", "--url", url))


def test_a_store_url_of_an_unknown_kind_is_one_clear_line(cli: Cli) -> None:
    assert "unknown store URL" in one_line_error(cli("ls", "--url", "ftp://somewhere"))


def test_url_on_the_command_line_beats_the_environment(cli: Cli, tmp_path: Path) -> None:
    # Given a job in the store of TASKMILL_URL
    cli.enqueue("add", "-k", "a=1")
    # When ls runs on another store given by --url, then that store is used (and it is empty)
    other = f"sqlite:///{tmp_path}/other.db"
    done = cli("ls", "--url", other)
    assert done.returncode == 0
    assert "no jobs" in done.stdout
    assert (tmp_path / "other.db").exists()


def test_management_commands_work_on_the_store_alone_without_an_app(cli: Cli) -> None:
    # Given a failed job
    job_id = cli.enqueue("boom")
    cli.burst()
    # When it is listed, shown and retried with only the store URL (no app), then all works
    assert job_id in cli("ls", app=False).stdout
    assert "ValueError: boom" in cli("show", job_id, app=False).stdout
    assert cli("retry", job_id, app=False).returncode == 0
    assert cli.job(job_id)["state"] == "queued"


# -- enqueue -------------------------------------------------------------------------------------


def test_enqueue_prints_the_new_jobs_id_and_ls_lists_it(cli: Cli) -> None:
    # When a job is enqueued
    done = cli("enqueue", "add", "-k", "a=1", "--title", "first sum")
    # Then its id is printed and it is queued
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("enqueued job 1 (add on default, queued)")
    listing = cli("ls")
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if line.strip().startswith("1 "))
    assert "add" in row and "default" in row and "queued" in row and "first sum" in row


def test_enqueue_takes_kwargs_as_json_and_as_key_value_pairs(cli: Cli) -> None:
    # When kwargs come as JSON and as -k pairs (JSON values where they parse, else text)
    done = cli("enqueue", "greet".capitalize(), "--kwargs", '{"name": "Ada", "times": 1}', "-k", "times=2",
               "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    # Then the pairs win over the JSON and are typed
    assert job["kwargs"] == {"name": "Ada", "times": 2}
    assert job["queue"] == "greetings"
    text = cli("enqueue", "Greet", "-k", "name=007", "--json")
    assert json.loads(text.stdout)["kwargs"]["name"] == "007"


def test_enqueue_takes_positional_args_and_every_option(cli: Cli) -> None:
    done = cli("enqueue", "add", "--args", "[2]", "-k", "b=3", "--queue", "sums", "--priority", "5",
               "--owner", "user:42", "--title", "a sum", "--retry", "[[2, \"10s\"]]",
               "--result-url", "/done/{id}", "--return-url", "/back", "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert (job["args"], job["kwargs"], job["queue"], job["priority"]) == ([2], {"b": 3}, "sums", 5)
    assert (job["owner"], job["title"], job["max_attempts"]) == ("user:42", "a sum", 3)
    assert (job["result_url"], job["return_url"]) == ("/done/{id}", "/back")


def test_enqueue_with_bad_json_is_refused_before_anything_is_stored(cli: Cli) -> None:
    # When --kwargs is not JSON, or not an object
    bad = cli("enqueue", "add", "--kwargs", "{a: 1")
    not_object = cli("enqueue", "add", "--kwargs", "[1]")
    # Then it is a usage error that says why, and nothing was stored
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
    assert not_object.returncode == 2 and "JSON object" in not_object.stderr
    assert "Traceback" not in bad.stderr + not_object.stderr
    assert "no jobs" in cli("ls").stdout


def test_enqueue_of_an_unknown_task_is_one_clear_line(cli: Cli) -> None:
    assert one_line_error(cli("enqueue", "nope")) == "Error: unknown task 'nope'"


def test_enqueue_with_invalid_input_names_the_fields(cli: Cli) -> None:
    line = one_line_error(cli("enqueue", "Greet", "-k", "times=0"))
    assert "name: Field required" in line
    assert "times: Input should be greater than or equal to 1" in line
    line = one_line_error(cli("enqueue", "add", "-k", "a=x"))
    assert "a: Input should be a valid integer" in line


def test_enqueue_with_a_bad_duration_or_time_is_one_clear_line(cli: Cli) -> None:
    assert "is not a duration" in one_line_error(cli("enqueue", "add", "-k", "a=1", "--delay", "5x"))
    assert "naive" in one_line_error(cli("enqueue", "add", "-k", "a=1", "--at", "2030-01-01T09:00"))
    assert "not both" in one_line_error(cli("enqueue", "add", "-k", "a=1", "--delay", "5m", "--at",
                                            "2030-01-01T09:00Z"))
    done = cli("enqueue", "add", "-k", "a=1", "--at", "tomorrow")
    assert done.returncode == 2 and "ISO 8601" in done.stderr


def test_enqueue_with_a_delay_schedules_the_job_and_a_burst_worker_leaves_it(cli: Cli) -> None:
    # Given a job delayed by an hour
    done = cli("enqueue", "add", "-k", "a=1", "--delay", "1h")
    assert done.returncode == 0, done.stderr
    assert "scheduled until" in done.stdout
    # When a burst worker runs, then the job is still scheduled
    cli.burst()
    assert cli.job("1")["state"] == "scheduled"


def test_enqueue_unique_returns_the_job_already_waiting(cli: Cli) -> None:
    first = cli.enqueue("add", "-k", "a=1", "--unique")
    second = cli.enqueue("add", "-k", "a=1", "--unique")
    other = cli.enqueue("add", "-k", "a=2", "--unique")
    assert first == second != other


def test_enqueue_without_an_app_says_it_needs_one(cli: Cli) -> None:
    line = one_line_error(cli("enqueue", "add", "-k", "a=1", app=False))
    assert "needs your app" in line and "TASKMILL_APP" in line


def test_enqueue_wait_follows_the_job_and_exits_by_its_final_state(cli: Cli) -> None:
    # Given a worker running in the background
    worker = cli.start("worker")
    try:
        # When a job that succeeds is enqueued with --wait, then it exits 0 with the result
        ok = cli("enqueue", "add", "-k", "a=20", "-k", "b=22", "--wait", timeout=60)
        assert ok.returncode == 0, ok.stderr
        assert "adding 20 and 22" in ok.stdout
        assert "succeeded: 42" in ok.stdout
        # When a job that fails is enqueued with --wait, then it exits 1 with the error
        bad = cli("enqueue", "boom", "-k", "message=no luck", "--wait", timeout=60)
        assert "failed: ValueError: no luck" in one_line_error(bad)
    finally:
        worker.terminate()
        assert worker.wait(30) == 0


# -- ls, show, logs, wait ------------------------------------------------------------------------


def test_ls_filters_by_state_queue_task_and_owner(cli: Cli) -> None:
    # Given jobs of different tasks, queues and owners, one of them failed
    cli.enqueue("boom")
    cli.burst()
    cli.enqueue("add", "-k", "a=1", "--owner", "user:1")
    cli.enqueue("Greet", "-k", "name=Bo")

    def ids(*args: str) -> list[str]:
        done = cli("ls", "--json", *args)
        assert done.returncode == 0, done.stderr
        return [job["id"] for job in json.loads(done.stdout)["items"]]

    # Then each filter keeps only its jobs, newest first
    assert ids() == ["3", "2", "1"]
    assert ids("--state", "failed") == ["1"]
    assert ids("--state", "queued,failed") == ["3", "2", "1"]
    assert ids("--queue", "greetings") == ["3"]
    assert ids("--task", "add") == ["2"]
    assert ids("--owner", "user:1") == ["2"]
    assert ids("--limit", "1") == ["3"]
    assert "no jobs match" in cli("ls", "--state", "cancelled").stdout


def test_ls_pages_with_a_cursor(cli: Cli) -> None:
    for a in range(3):
        cli.enqueue("add", "-k", f"a={a}")
    first = json.loads(cli("ls", "--json", "--limit", "2").stdout)
    assert [j["id"] for j in first["items"]] == ["3", "2"] and first["next"]
    assert f"taskmill ls --after {first['next']}" in cli("ls", "--limit", "2").stdout
    rest = json.loads(cli("ls", "--json", "--limit", "2", "--after", first["next"]).stdout)
    assert [j["id"] for j in rest["items"]] == ["1"] and rest["next"] is None


def test_ls_with_an_unknown_state_is_one_clear_line(cli: Cli) -> None:
    assert "unknown state 'done'" in one_line_error(cli("ls", "--state", "done"))


def test_show_prints_every_field_and_the_error_with_its_traceback(cli: Cli) -> None:
    # Given a job that failed
    job_id = cli.enqueue("boom", "-k", "message=disk full", "--owner", "user:7", "--title", "doomed")
    cli.burst()
    # When it is shown
    done = cli("show", job_id)
    # Then its fields, its error and the traceback (down to the task's line) are there
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for text in ("boom", "failed", "user:7", "doomed", '"message":"disk full"', "1 of 1 (0 left)",
                 "error: ValueError: disk full", "Traceback (most recent call last)",
                 'testapp.py", line', "raise ValueError(message)"):
        assert text in out, text


def test_show_json_has_the_handles_field_names(cli: Cli) -> None:
    job_id = cli.enqueue("add", "-k", "a=1")
    cli.burst()
    job = cli.job(job_id)
    assert job["state"] == "succeeded" and job["result"] == 1 and job["progress"] == 100
    assert job["progress_message"] == "half way"
    assert {"attempts", "max_attempts", "attempts_left", "created_at", "finished_at"} <= set(job)


def test_an_unknown_job_id_is_one_clear_line_for_every_command(cli: Cli) -> None:
    for command in ("show", "wait", "logs", "cancel", "retry", "rm"):
        assert one_line_error(cli(command, "999")) == "Error: no job with id '999'", command


def test_debug_shows_the_traceback_of_an_error(cli: Cli) -> None:
    done = cli("show", "999", "--debug")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "JobNotFound" in done.stderr


def test_logs_prints_the_lines_a_job_logged(cli: Cli) -> None:
    job_id = cli.enqueue("boom")
    cli.burst()
    done = cli("logs", job_id)
    assert done.returncode == 0
    assert "WARNING" in done.stdout and "about to fail" in done.stdout
    records = json.loads(cli("logs", job_id, "--json").stdout)
    assert [(r["level"], r["message"], r["attempt"]) for r in records] == [("WARNING", "about to fail", 1)]


def test_wait_exit_code_follows_the_final_state(cli: Cli) -> None:
    # Given a succeeded, a failed and a cancelled job, and one still queued
    ok, bad, gone = cli.enqueue("add", "-k", "a=1"), cli.enqueue("boom"), cli.enqueue("add", "-k", "a=2")
    assert cli("cancel", gone).returncode == 0
    cli.burst()
    waiting = cli.enqueue("slow", "--queue", "nobody-serves-this")
    # Then wait exits 0 only for the succeeded one
    done = cli("wait", ok)
    assert done.returncode == 0 and "succeeded" in done.stdout
    assert "failed: ValueError: boom" in one_line_error(cli("wait", bad))
    assert "cancelled" in one_line_error(cli("wait", gone))
    assert "still queued after" in one_line_error(cli("wait", waiting, "--timeout", "0.5"))
    assert json.loads(cli("wait", ok, "--json").stdout)["result"] == 1


def test_show_follow_shows_live_progress_and_log_lines_and_exits_0_on_success(cli: Cli) -> None:
    # Given a slow job and a worker running in the background
    job_id = cli.enqueue("slow", "-k", "seconds=1.5")
    worker = cli.start("worker")
    try:
        # When the job is followed
        done = cli("show", job_id, "--follow", timeout=60)
        # Then the command ends when the job does, with its log lines and its fields
        assert done.returncode == 0, done.stderr
        assert "slept 1.5 seconds" in done.stdout
        assert "succeeded" in done.stdout and "100%" in done.stdout
        # And following a failing job exits 1
        bad = cli.enqueue("boom")
        failed = cli("show", bad, "--follow", timeout=60)
        assert failed.returncode == 1 and "ValueError: boom" in failed.stderr
    finally:
        worker.terminate()
        assert worker.wait(30) == 0


# -- cancel, retry, rm, purge ---------------------------------------------------------------------


def test_cancel_of_a_queued_job_means_it_never_runs(cli: Cli) -> None:
    job_id = cli.enqueue("add", "-k", "a=1")
    done = cli("cancel", job_id, "--reason", "changed my mind")
    assert done.returncode == 0 and "cancelled" in done.stdout
    cli.burst()
    job = cli.job(job_id)
    assert (job["state"], job["attempts"], job["cancel_reason"]) == ("cancelled", 0, "changed my mind")


def test_cancel_of_a_finished_job_is_one_clear_line(cli: Cli) -> None:
    job_id = cli.enqueue("add", "-k", "a=1")
    cli.burst()
    assert "only a scheduled, queued or running job" in one_line_error(cli("cancel", job_id))


def test_retry_runs_a_failed_job_again_with_one_more_attempt(cli: Cli) -> None:
    job_id = cli.enqueue("boom")
    cli.burst()
    done = cli("retry", job_id)
    assert done.returncode == 0, done.stderr
    assert "queued again: attempt 2 of 2" in done.stdout
    cli.burst()
    job = cli.job(job_id)
    assert (job["state"], job["attempts"]) == ("failed", 2)
    assert "only a succeeded, failed or cancelled" in one_line_error(
        cli("retry", cli.enqueue("add", "-k", "a=1")))


def test_rm_deletes_a_job_which_is_then_unknown(cli: Cli) -> None:
    job_id = cli.enqueue("add", "-k", "a=1")
    assert cli("rm", job_id).stdout.strip() == f"deleted job {job_id}"
    assert one_line_error(cli("show", job_id)) == f"Error: no job with id '{job_id}'"


def test_purge_asks_first_and_deletes_only_the_states_given(cli: Cli) -> None:
    # Given a failed job and a queued one
    cli.enqueue("boom")
    cli.burst()
    cli.enqueue("add", "-k", "a=1")
    # When purge is answered no, then nothing is deleted
    refused = cli("purge", "--state", "failed", input="n\n")
    assert refused.returncode == 1 and "Delete 1 failed job(s)?" in refused.stderr
    # When it is answered yes, then only the failed job is deleted
    done = cli("purge", "--state", "failed", input="y\n")
    assert done.returncode == 0 and "deleted 1 failed job(s)" in done.stdout
    assert [j["id"] for j in json.loads(cli("ls", "--json").stdout)["items"]] == ["2"]
    # And --yes deletes every job not running without asking
    assert "deleted 1" in cli("purge", "--yes").stdout
    assert "no jobs" in cli("ls").stdout


# -- stats, queues, periodic, tasks, migrate ------------------------------------------------------


def test_stats_counts_jobs_per_queue_and_state(cli: Cli) -> None:
    cli.enqueue("boom")
    cli.burst()
    cli.enqueue("add", "-k", "a=1")
    cli.enqueue("Greet", "-k", "name=Al")
    counts = json.loads(cli("stats", "--json").stdout)
    assert counts["default"]["failed"] == 1 and counts["default"]["queued"] == 1
    assert counts["greetings"]["queued"] == 1 and counts["slow"]["queued"] == 0
    table = cli("stats").stdout
    assert "QUEUE" in table and "FAILED" in table and "greetings" in table


def test_a_paused_queue_is_listed_as_paused_and_its_jobs_wait(cli: Cli) -> None:
    # Given the greetings queue paused
    assert cli("queues", "pause", "greetings").stdout.strip() == "queue greetings paused"
    job_id = cli.enqueue("Greet", "-k", "name=Al")
    # When a burst worker runs, then the job still waits and the queue shows as paused
    cli.burst()
    assert cli.job(job_id)["state"] == "queued"
    queues = {q["name"]: q for q in json.loads(cli("queues", "--json").stdout)}
    assert queues["greetings"]["paused"] is True and queues["greetings"]["waiting"] == 1
    assert queues["default"]["paused"] is False and "add" in queues["default"]["tasks"]
    assert "paused" in cli("queues").stdout
    # When it is resumed, then the job runs
    assert cli("queues", "resume", "greetings").returncode == 0
    cli.burst()
    assert cli.job(job_id)["result"] == "hello Al"


def test_periodic_lists_stops_and_starts_a_periodic_task(cli: Cli) -> None:
    listing = cli("periodic")
    assert listing.returncode == 0 and "hourly" in listing.stdout and "every 1h" in listing.stdout
    stopped = cli("periodic", "stop", "hourly")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    items = json.loads(cli("periodic", "ls", "--json").stdout)
    assert [(i["name"], i["enabled"]) for i in items] == [("hourly", False)]
    assert cli("periodic", "start", "hourly").returncode == 0
    assert json.loads(cli("periodic", "ls", "--json").stdout)[0]["enabled"] is True
    assert "is not periodic" in one_line_error(cli("periodic", "stop", "add"))
    assert "unknown task" in one_line_error(cli("periodic", "stop", "nope"))


def test_tasks_lists_the_definitions_with_their_input(cli: Cli) -> None:
    done = cli("tasks")
    assert done.returncode == 0
    assert "a: integer, b: integer = 0" in done.stdout and "Add two numbers." in done.stdout
    definitions = {d["name"]: d for d in json.loads(cli("tasks", "--json").stdout)}
    assert definitions["Greet"]["input_schema"]["required"] == ["name"]
    assert definitions["hourly"]["periodic"] == {"every": 3600.0}
    assert "needs your app" in one_line_error(cli("tasks", app=False))


def test_migrate_on_sqlite_says_there_is_nothing_to_do(cli: Cli) -> None:
    done = cli("migrate")
    assert done.returncode == 0 and "nothing to do" in done.stdout


# -- new-task ------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["function", "class"])
def test_new_task_writes_a_task_and_a_test_that_passes(cli: Cli, form: str) -> None:
    # When a new task is generated for the app
    args = ["new-task", "send_invoice"] + (["--class"] if form == "class" else [])
    done = cli(*args)
    # Then the task file and its test exist
    assert done.returncode == 0, done.stderr
    assert "wrote tasks/send_invoice.py" in done.stdout
    task_file = cli.cwd / "tasks" / "send_invoice.py"
    assert "from testapp import mill" in task_file.read_text()
    # And the generated test passes as it is
    import subprocess

    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_send_invoice.py"], cwd=cli.cwd, env=cli.env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    # And the app sees the task once its module is imported
    tasks = cli("tasks", "--json", "--app", "tasks.send_invoice:mill")
    assert "send_invoice" in [t["name"] for t in json.loads(tasks.stdout)]


def test_new_task_never_overwrites_a_file(cli: Cli) -> None:
    # Given a test file of that name already there
    (cli.cwd / "tests").mkdir()
    (cli.cwd / "tests" / "test_report.py").write_text("# mine\n")
    # When the task is generated, then it is refused and nothing is written
    line = one_line_error(cli("new-task", "report"))
    assert "tests/test_report.py already exists" in line
    assert not (cli.cwd / "tasks" / "report.py").exists()
    assert (cli.cwd / "tests" / "test_report.py").read_text() == "# mine\n"


def test_new_task_without_an_app_writes_a_mill_to_replace(cli: Cli) -> None:
    done = cli("new-task", "resize", "--dir", "jobs", app=False)
    assert done.returncode == 0, done.stderr
    text = (cli.cwd / "jobs" / "resize.py").read_text()
    assert "mill = Mill()" in text and "from taskmill import Cancelled, Context, Mill" in text
    assert "from jobs.resize import resize" in (cli.cwd / "tests" / "test_resize.py").read_text()


def test_new_task_refuses_a_name_that_is_not_an_identifier(cli: Cli) -> None:
    done = cli("new-task", "Send-Invoice")
    assert done.returncode == 2 and "lowercase Python identifier" in done.stderr
