"""Conformance, inspection: get, query and paging, logs, stats."""

from __future__ import annotations

from typing import Any

from ... import transitions
from ...backends.base import Backend, JobFilter, NewLog
from ...job import JobState
from ...mill import Mill
from ...transitions import Succeeded
from ._base import (
    QUEUED,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    _Store,
    at,
    build,
    claim,
    counts,
    everything,
    finish,
    ids,
    put,
)


class InspectionConformance(_Store):
    def test_get_of_an_unknown_id_is_none(self, backend: Backend, mill: Mill) -> None:
        # given a store with a job, then ids that name none, or could name none, find nothing
        put(backend, mill, at(0))
        for unknown in ("999999999", "not-a-job-id", ""):
            assert backend.get(unknown) is None
            assert mill.get(unknown) is None

    def test_query_filters_by_state_queue_task_owner_and_parent(
            self, backend: Backend, mill: Mill) -> None:
        # given a parent and two children in other queues, tasks and owners; one child running
        parent = put(backend, mill, at(0), owner="alice")
        report = put(backend, mill, at(1), "other", queue="reports", owner="bob", parent=parent.id)
        urgent = put(backend, mill, at(2), queue="urgent", owner="alice", parent=parent.id)
        claim(backend, at(3), queues=["urgent"])

        def find(**where: Any) -> list[str]:
            return ids(everything(backend, **where))

        # then each filter finds its jobs, newest first
        assert find(states=(RUNNING,)) == [urgent.id]
        assert find(states=(QUEUED, RUNNING)) == [urgent.id, report.id, parent.id]
        assert find(states=(SUCCEEDED,)) == []
        assert find(queue="reports") == [report.id]
        assert find(task="other") == [report.id]
        assert find(owner="alice") == [urgent.id, parent.id]
        assert find(parent=parent.id) == [urgent.id, report.id]
        assert find(owner="alice", parent=parent.id, states=(RUNNING,)) == [urgent.id]
        assert find(queue="nowhere") == [] and find(parent="999999999") == []

    def test_query_pages_newest_first_with_a_cursor(self, backend: Backend, mill: Mill) -> None:
        # given seven jobs
        jobs = [put(backend, mill, at(n)) for n in range(7)]
        # when read three at a time, following the cursor
        pages, after = [], None
        while True:
            page, after = backend.query(JobFilter(), 3, after)
            pages.append(ids(page))
            if after is None:
                break
        # then pages of 3, 3 and 1 hold every job once, newest first
        assert [len(p) for p in pages] == [3, 3, 1]
        assert [i for p in pages for i in p] == ids(jobs)[::-1]

    def test_pages_neither_repeat_nor_skip_jobs_when_jobs_come_and_go_between_them(
            self, backend: Backend, mill: Mill) -> None:
        # given six jobs, of which the first page of three was read
        jobs = [put(backend, mill, at(n)) for n in range(6)]
        first, after = backend.query(JobFilter(), 3, None)
        assert ids(first) == ids(jobs[3:])[::-1] and after is not None
        # when new jobs arrive and the last job seen is deleted
        put(backend, mill, at(10))
        assert backend.delete(first[-1].id) is True
        # then the next page goes on where the first ended
        second, end = backend.query(JobFilter(), 3, after)
        assert (ids(second), end) == (ids(jobs[:3])[::-1], None)

    def test_a_page_that_ends_the_list_has_no_next_cursor(self, backend: Backend, mill: Mill) -> None:
        # given exactly two pages of jobs
        for n in range(6):
            put(backend, mill, at(n))
        # then the first page points on and the second, full as it is, ends the list
        first, after = backend.query(JobFilter(), 3, None)
        second, end = backend.query(JobFilter(), 3, after)
        assert (len(first), len(second), end) == (3, 3, None) and after is not None

    def test_paging_with_a_filter_sees_only_matching_jobs(self, backend: Backend, mill: Mill) -> None:
        # given jobs alternating between queues a and b
        jobs = [put(backend, mill, at(n), queue="ab"[n % 2]) for n in range(9)]
        in_a = [j.id for j in jobs if j.queue == "a"][::-1]
        # when queue a is read two at a time
        seen, after = [], None
        for _ in range(10):
            page, after = backend.query(JobFilter(queue="a"), 2, after)
            seen.extend(ids(page))
            if after is None:
                break
        # then exactly its jobs come back, newest first
        assert seen == in_a

    def test_the_mill_lists_jobs_with_its_filters(self, mill: Mill) -> None:
        # given two jobs of different tasks, queues and owners
        first = mill.enqueue("noop", owner="u1")
        second = mill.enqueue("other", queue="q2", owner="u2")
        # then the mill lists them newest first, filtered, limited and paged
        assert ids(mill.jobs()) == [second.id, first.id]
        assert ids(mill.jobs(state="queued", task="noop")) == [first.id]
        assert ids(mill.jobs(state=["succeeded", "queued"], owner="u2")) == [second.id]
        assert ids(mill.jobs(limit=1)) == [second.id]
        _, after = mill.page(limit=1)
        assert ids(mill.jobs(after=after)) == [first.id]

    def test_logs_come_back_oldest_first_and_a_limit_keeps_the_latest(
            self, backend: Backend, mill: Mill) -> None:
        # given lines logged by two attempts of a job, in two writes, and a line of another job
        job, neighbour = put(backend, mill, at(0)), put(backend, mill, at(0))
        lines = [("INFO", "start", 1), ("WARNING", "slow disk", 1), ("ERROR", "boom", 1),
                 ("INFO", "start again", 2), ("INFO", "done", 2)]
        records = [NewLog(job.id, attempt, at(n // 2), level, msg)  # some share a time
                   for n, (level, msg, attempt) in enumerate(lines)]
        backend.append_logs(records[:2])
        backend.append_logs([NewLog(neighbour.id, 1, at(1), "INFO", "other job"), *records[2:]])
        # then they read back in order, each with its time, level, message and attempt
        assert [(r.at, r.level, r.message, r.attempt) for r in backend.logs(job.id, None)] == [
            (at(n // 2), level, msg, attempt) for n, (level, msg, attempt) in enumerate(lines)]
        # and a limit keeps the latest lines, still oldest first
        assert [r.message for r in backend.logs(job.id, 2)] == ["start again", "done"]
        assert [r.message for r in backend.logs(neighbour.id, None)] == ["other job"]
        assert backend.logs("999999999", None) == []

    def test_deleting_a_job_deletes_its_logs_and_later_lines_for_it_are_dropped(
            self, backend: Backend, mill: Mill) -> None:
        # given a job with a log line, deleted
        job = put(backend, mill, at(0))
        backend.append_logs([NewLog(job.id, 1, at(1), "INFO", "hello")])
        assert backend.delete(job.id) is True
        # when a late line for it arrives, it is dropped without an error; no line is left
        backend.append_logs([NewLog(job.id, 1, at(2), "INFO", "too late")])
        assert backend.logs(job.id, None) == []

    def test_stats_count_the_jobs_of_each_queue_in_each_state(
            self, backend: Backend, mill: Mill) -> None:
        # given jobs in two queues: queued, scheduled, running and succeeded
        put(backend, mill, at(0), queue="a")
        put(backend, mill, at(0), queue="a", delay=60)
        put(backend, mill, at(0), queue="b")
        done = put(backend, mill, at(0), queue="b")
        running = claim(backend, at(1), queues=["b"])
        assert finish(backend, next(j for j in running if j.id == done.id), Succeeded(1), at(2))
        # then the backend counts them per queue and state
        assert counts(backend) == {"a": {"queued": 1, "scheduled": 1},
                                   "b": {"running": 1, "succeeded": 1}}
        # and the counts follow what happens next: a cancel, a promotion, a delete, a prune
        [scheduled] = everything(backend, states=(SCHEDULED,))
        assert backend.apply([transitions.cancel(scheduled, None, at(3))], at(3)) == [True]
        backend.enqueue([build(mill, at(3), queue="a", delay=5)], at(3))
        assert backend.promote_due(at(10), 10) == 1
        assert backend.delete(done.id) is True
        assert backend.prune(at(100), 100) == 1
        assert counts(backend) == {"a": {"queued": 2}, "b": {"running": 1}}

    def test_the_mill_stats_list_every_state_of_every_queue(self, mill: Mill) -> None:
        # given one job in queue q
        mill.enqueue("noop", queue="q")
        stats = mill.stats()
        # then every state is there, zero or not, for q and for the queues of the tasks
        zero = {s.value: 0 for s in JobState}
        assert stats["q"] == {**zero, "queued": 1}
        assert stats["default"] == zero and stats["slow"] == zero

