"""What is particular to the SQLite backend: its schema, migrations and SQL scripts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from taskmill import ConfigError, Context, Mill
from taskmill.backends.sqlite import SCHEMA_VERSION, statements

V2_SCHEMA = (Path(__file__).parent / "data" / "sqlite_schema_v2.sql").read_text("utf-8")
V2_INSERT = ("INSERT INTO jobs (task, queue, state, args, kwargs, max_attempts, retry, unique_key, "
             "created_at, scheduled_at, max_iterations) "
             "VALUES ('noop', 'default', ?, '[]', '{}', 1, '{}', 'k', 0, 0, 1)")


def _v2_file(path: Path, states: list[str]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements(V2_SCHEMA):
        conn.execute(statement)
    conn.execute("INSERT INTO taskmill_meta (key, value) VALUES ('schema_version', '2')")
    for state in states:
        conn.execute(V2_INSERT, (state,))
    conn.close()


def _mill(path: Path) -> Mill:
    mill = Mill(f"sqlite:///{path}")

    @mill.task
    def noop(ctx: Context) -> None:
        return None

    return mill


def _indexes(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                               " AND name NOT LIKE 'sqlite_%'")}
    finally:
        conn.close()


def test_a_schema_2_file_is_migrated_and_keeps_its_jobs_and_its_deleted_ids(tmp_path: Path) -> None:
    # given a file written by schema 2 whose newest job (id 3) was deleted
    path = tmp_path / "old.db"
    _v2_file(path, ["succeeded", "queued", "queued"])
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DELETE FROM jobs WHERE id = 3")
    conn.close()
    # when this taskmill opens it
    mill = _mill(path)
    try:
        # then its jobs are all there, counted by the new stats query
        assert mill.get("1").state.value == "succeeded"  # type: ignore[union-attr]
        assert mill.stats()["default"]["queued"] == 1
        # and a new job does not take the deleted id 3
        assert mill.enqueue("noop").id == "4"
    finally:
        mill.close()
    # and the schema is the current one: schema 2's (queue, state) index is gone
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM taskmill_meta").fetchone() == (str(SCHEMA_VERSION),)
    conn.close()
    indexes = _indexes(path)
    assert "jobs_finished_queue" in indexes and "jobs_queue_state" not in indexes
    # and opening it again changes nothing: the ids go on
    again = _mill(path)
    try:
        assert again.enqueue("noop").id == "5" and len(again.jobs()) == 4
    finally:
        again.close()


def test_a_new_file_never_gives_a_deleted_id_again_even_once_it_holds_no_jobs(
        tmp_path: Path) -> None:
    # given a new file whose jobs were all deleted
    mill = _mill(tmp_path / "new.db")
    try:
        first = [mill.enqueue("noop").id for _ in range(3)]
        assert mill.delete_all() == 3
        # when jobs are enqueued again, alone and in a batch
        again = [mill.enqueue("noop").id, *[j.id for j in mill.enqueue_many([{"task": "noop"}] * 2)]]
        # then the ids go on from the last one ever given
        assert first == ["1", "2", "3"] and again == ["4", "5", "6"]
    finally:
        mill.close()


def test_a_file_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    # given a file a later taskmill wrote
    path = tmp_path / "newer.db"
    mill = _mill(path)
    mill.stats()
    mill.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE taskmill_meta SET value = ? WHERE key = 'schema_version'",
                 (str(SCHEMA_VERSION + 1),))
    conn.close()
    # when this taskmill opens it, then it says why it will not
    with pytest.raises(ConfigError, match="newer taskmill"):
        Mill(f"sqlite:///{path}").stats()


def test_sql_scripts_split_into_statements_whole_triggers_included() -> None:
    # given a script with a comment holding a semicolon and a trigger whose body holds two
    script = ("-- one; two\nCREATE TABLE t (x);\n"
              "CREATE TRIGGER r AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;\n\n")
    # when it is split, then each statement comes whole
    assert [s.strip() for s in statements(script)] == [
        "-- one; two\nCREATE TABLE t (x);",
        "CREATE TRIGGER r AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;"]
    # and a statement left open is an error, not silently dropped
    with pytest.raises(ValueError, match="incomplete"):
        list(statements("CREATE TABLE u (x"))
