"""Conformance, claim: order, limits, queues and pauses, one claimer per job."""

from __future__ import annotations

from ...backends.base import Backend
from ...mill import Mill
from ._base import RUNNING, _Store, at, build, claim, claim_one, counts, ids, in_threads, put, stored


class ClaimConformance(_Store):
    def test_claim_takes_the_highest_priority_first_then_first_in_first_out(
            self, backend: Backend, mill: Mill) -> None:
        # given jobs of mixed priority enqueued one after the other
        low = put(backend, mill, at(0), priority=0)
        high1 = put(backend, mill, at(1), priority=5)
        mid = put(backend, mill, at(2), priority=1)
        high2 = put(backend, mill, at(3), priority=5)
        negative = put(backend, mill, at(4), priority=-3)
        # when they are claimed one at a time
        order = [claim_one(backend, at(10), token=f"t{i}").id for i in range(5)]
        # then priority decides, and the same priority goes first in, first out
        assert order == [high1.id, high2.id, mid.id, low.id, negative.id]

    def test_claim_of_a_batch_takes_the_best_jobs(self, backend: Backend, mill: Mill) -> None:
        # given five jobs, two of them urgent
        jobs = [put(backend, mill, at(i), priority=9 if i in (1, 3) else 0) for i in range(5)]
        # when a batch of two is claimed, it is the urgent two
        got = claim(backend, at(10), limit=2)
        assert sorted(ids(got)) == sorted([jobs[1].id, jobs[3].id])

    def test_claim_prefers_the_oldest_scheduled_time_over_the_order_of_enqueue(
            self, backend: Backend, mill: Mill) -> None:
        # given a job delayed to t=10 and one enqueued later, at t=5, to run at once
        delayed = put(backend, mill, at(0), delay=10)
        prompt = put(backend, mill, at(5))
        backend.promote_due(at(10), 100)
        # when claimed one at a time, the one whose time came first goes first
        assert claim_one(backend, at(10), token="a").id == prompt.id
        assert claim_one(backend, at(10), token="b").id == delayed.id

    def test_claim_takes_at_most_limit_jobs(self, backend: Backend, mill: Mill) -> None:
        # given five queued jobs
        for n in range(5):
            put(backend, mill, at(n))
        # when claimed in batches of two, then two, two, one and none are taken
        assert claim(backend, at(10), limit=0) == []
        sizes = [len(claim(backend, at(10), limit=2, token=f"t{i}")) for i in range(4)]
        assert sizes == [2, 2, 1, 0]
        assert counts(backend) == {"default": {"running": 5}}

    def test_claim_takes_only_jobs_of_the_queues_asked_for(self, backend: Backend, mill: Mill) -> None:
        # given jobs in queues a, b and c
        jobs = {q: put(backend, mill, at(0), queue=q) for q in ("a", "b", "c")}
        # when a worker of a and c claims, then it gets those and leaves b
        got = claim(backend, at(1), queues=["a", "c"])
        assert sorted(ids(got)) == sorted([jobs["a"].id, jobs["c"].id])
        assert claim(backend, at(1), queues=["zzz"]) == []
        # and a worker of all queues gets b
        assert ids(claim(backend, at(1), queues=None)) == [jobs["b"].id]

    def test_claim_skips_a_paused_queue_until_it_is_resumed(
            self, backend: Backend, mill: Mill) -> None:
        # given a paused queue and jobs in it and in another queue
        backend.set_paused("a", True)
        in_a = put(backend, mill, at(0), queue="a")
        in_b = put(backend, mill, at(0), queue="b")
        # when workers claim, then nothing of the paused queue is taken
        assert backend.paused() == {"a"}
        assert claim(backend, at(1), queues=["a"]) == []
        assert ids(claim(backend, at(1))) == [in_b.id]
        # and once resumed, its job is taken
        backend.set_paused("a", False)
        assert backend.paused() == set()
        assert ids(claim(backend, at(2), token="t2")) == [in_a.id]

    def test_a_queue_paused_on_one_connection_is_skipped_by_claims_on_another(
            self, backend: Backend, second_backend: Backend, mill: Mill) -> None:
        # given a job in queue a, which another host pauses
        put(backend, mill, at(0), queue="a")
        second_backend.set_paused("a", True)
        # then this host's worker does not take it, until the other host resumes the queue
        assert claim(backend, at(1)) == []
        second_backend.set_paused("a", False)
        assert len(claim(backend, at(2))) == 1

    def test_a_paused_queue_is_kept_in_the_store(
            self, second_backend: Backend, mill: Mill) -> None:
        # when a queue is paused through the mill
        mill.pause_queue("reports")
        mill.pause_queue("mail")
        mill.resume_queue("mail")
        # then another connection (another host, or after a restart) sees it paused
        assert second_backend.paused() == {"reports"}
        assert mill.paused_queues() == {"reports"}

    def test_scheduled_jobs_are_not_claimed_before_they_are_promoted(
            self, backend: Backend, mill: Mill) -> None:
        # given a job for t=60, past its time but not yet promoted
        job = put(backend, mill, at(0), delay=60)
        assert claim(backend, at(120)) == []
        # when it is promoted, then it is claimed
        assert backend.promote_due(at(120), 100) == 1
        assert ids(claim(backend, at(120))) == [job.id]

    def test_claim_marks_the_job_running_under_the_claim(self, backend: Backend, mill: Mill) -> None:
        # given a queued job
        job = put(backend, mill, at(0))
        # when a worker claims it at t=5 with a 30 s lease
        got = claim_one(backend, at(5), token="tok-A")
        # then it is running, its attempt counted, under that worker's lease and token
        for seen in (got, stored(backend, job.id)):
            assert (seen.id, seen.state, seen.attempts, seen.started_at) == (job.id, RUNNING, 1, at(5))
            assert (seen.claim_token, seen.worker, seen.lease_until) == ("tok-A", "worker-1", at(35))
        # and it is not claimed again
        assert claim(backend, at(6), token="tok-B") == []

    def test_each_job_is_claimed_once_by_claimers_racing_on_two_connections(
            self, backend: Backend, second_backend: Backend, mill: Mill) -> None:
        # given sixty queued jobs and six workers on two connections
        backend.enqueue([build(mill, at(0), args=[n]) for n in range(60)], at(0))
        connections = [backend, second_backend]

        def work(i: int) -> list[str]:
            mine: list[str] = []
            while got := claim(connections[i % 2], at(1), limit=4, token=f"token-{i}"):
                mine.extend(f"{j.id}/token-{i}" for j in got)
            return mine

        # when they all claim until nothing is left
        claimed = [entry for batch in in_threads(6, work) for entry in batch]
        # then every job was claimed exactly once, by the worker whose token it holds
        assert len(claimed) == 60
        assert len({entry.split("/")[0] for entry in claimed}) == 60
        for entry in claimed:
            job_id, token = entry.split("/")
            got = stored(backend, job_id)
            assert (got.state, got.claim_token, got.attempts) == (RUNNING, token, 1)

    def test_claim_from_an_empty_store_takes_nothing(self, backend: Backend) -> None:
        # given no job, then a claim takes nothing (and does not fail)
        assert claim(backend, at(0)) == []

