"""Conformance, scheduling: promotion of due jobs and periodic tasks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ... import transitions
from ...backends.base import Backend
from ...job import Job
from ...maintenance import Maintenance
from ...mill import Mill
from .. import FakeClock, drain
from ._base import QUEUED, SCHEDULED, SUCCEEDED, _Store, at, build, everything, ids, in_threads, put, stored

# -- scheduling ----------------------------------------------------------------------------

class SchedulingConformance(_Store):
    def test_promote_due_queues_the_scheduled_jobs_whose_time_has_come(
            self, backend: Backend, mill: Mill) -> None:
        # given jobs due at t=10, 20 and 30
        a, b, c = (put(backend, mill, at(0), delay=d) for d in (10, 20, 30))
        # when due jobs are promoted at t=20
        assert backend.promote_due(at(20), 100) == 2
        # then those due up to and including now are queued; the later one waits
        assert [stored(backend, j.id).state for j in (a, b, c)] == [QUEUED, QUEUED, SCHEDULED]
        assert backend.promote_due(at(20), 100) == 0

    def test_promote_due_moves_at_most_limit_jobs_earliest_first(
            self, backend: Backend, mill: Mill) -> None:
        # given three due jobs, when at most two are promoted, then they are the two earliest
        late, early, middle = (put(backend, mill, at(0), delay=d) for d in (30, 10, 20))
        assert backend.promote_due(at(60), 2) == 2
        assert [stored(backend, j.id).state for j in (early, middle, late)] == [QUEUED, QUEUED,
                                                                                 SCHEDULED]

    def test_next_due_is_the_earliest_time_of_a_scheduled_job(
            self, backend: Backend, mill: Mill) -> None:
        # given no scheduled job, there is no next time, even with a queued one
        assert backend.next_due() is None
        put(backend, mill, at(0))
        assert backend.next_due() is None
        # given jobs due at t=30 and t=10, the next time is t=10, then t=30 once that is promoted
        put(backend, mill, at(0), delay=30)
        put(backend, mill, at(0), delay=10)
        assert backend.next_due() == at(10)
        backend.promote_due(at(10), 100)
        assert backend.next_due() == at(30)
        # a cancelled job has no time to wait for
        [waiting] = everything(backend, states=(SCHEDULED,))
        assert backend.apply([transitions.cancel(waiting, None, at(11))], at(11)) == [True]
        assert backend.next_due() is None

    def test_a_time_in_the_past_means_now(self, mill: Mill, clock: FakeClock) -> None:
        # when a job is enqueued for yesterday, then it is queued for now
        job = mill.enqueue("noop", at=clock() - timedelta(days=1))
        assert (job.state, job.scheduled_at) == (QUEUED, clock())

    def test_a_retry_an_hour_away_runs_once_the_clock_has_moved_an_hour(
            self, mill: Mill, clock: FakeClock) -> None:
        # given a task that fails once, retried an hour later
        calls: list[datetime] = []

        @mill.task(retry=[(1, "1h")])
        def flaky(ctx: Any) -> str:
            calls.append(mill.now())
            if len(calls) == 1:
                raise OSError("network down")
            return "ok"

        job = flaky.enqueue()
        # when a worker runs what is ready, the job fails and waits an hour
        drain(mill)
        assert (job.refresh().state, job.scheduled_at) == (SCHEDULED, at("1h"))
        clock.advance("59m")
        drain(mill)
        assert job.refresh().state is SCHEDULED and len(calls) == 1
        # then an hour later it runs again, and succeeds
        clock.advance("1m")
        drain(mill)
        assert (job.refresh().state, job.attempts, calls) == (SUCCEEDED, 2, [at(0), at("1h")])


# -- periodic ------------------------------------------------------------------------------

class PeriodicConformance(_Store):
    def test_a_registered_periodic_task_is_on_and_fires_after_its_first_slot(
            self, backend: Backend, mill: Mill) -> None:
        # given a task registered at slot t=300
        backend.periodic_register("tick", at(300))
        assert set(backend.periodic_states()) == {"tick"}
        state = backend.periodic_states()["tick"]
        assert (state.enabled, state.last_slot) == (True, at(300))
        # then that slot does not fire; the next one does, with the job given
        assert backend.periodic_fire("tick", at(300), build(mill, at(300)), at(300)) is None
        job = backend.periodic_fire("tick", at(600), build(mill, at(600), title="tick"), at(600))
        assert job is not None and stored(backend, job.id).title == "tick"
        assert backend.periodic_states()["tick"].last_slot == at(600)

    def test_registering_a_known_periodic_task_again_leaves_it_as_it_is(
            self, backend: Backend) -> None:
        # given a task registered, then stopped
        backend.periodic_register("tick", at(300))
        backend.periodic_set("tick", False, at(600))
        # when it is registered again (a worker restarts), it stays stopped at its slot
        backend.periodic_register("tick", at(900))
        state = backend.periodic_states()["tick"]
        assert (state.enabled, state.last_slot) == (False, at(300))

    def test_a_periodic_slot_fires_once_however_many_workers_try(
            self, backend: Backend, second_backend: Backend, mill: Mill) -> None:
        # given a periodic task, and eight workers on two connections about to fire its next slot
        backend.periodic_register("tick", at(0))
        connections = [backend, second_backend]

        def fire(i: int) -> Job | None:
            return connections[i % 2].periodic_fire("tick", at(300), build(mill, at(300)), at(300))

        # when they all fire it at once
        fired = [job for job in in_threads(8, fire) if job is not None]
        # then one job is stored for the slot; firing it again does nothing
        assert len(fired) == 1 and ids(everything(backend)) == [fired[0].id]
        assert backend.periodic_fire("tick", at(300), build(mill, at(300)), at(301)) is None
        # nor does an older slot fire after a newer one
        assert backend.periodic_fire("tick", at(150), build(mill, at(301)), at(301)) is None
        assert len(everything(backend)) == 1

    def test_a_stopped_periodic_task_does_not_fire(self, backend: Backend, mill: Mill) -> None:
        # given a periodic task that was stopped
        backend.periodic_register("tick", at(0))
        backend.periodic_set("tick", False, at(0))
        # then its next slot does not fire, and it keeps its last slot
        assert backend.periodic_fire("tick", at(300), build(mill, at(300)), at(300)) is None
        state = backend.periodic_states()["tick"]
        assert (state.enabled, state.last_slot) == (False, at(0)) and everything(backend) == []

    def test_turning_a_periodic_task_on_again_does_not_catch_up_missed_slots(
            self, backend: Backend, mill: Mill) -> None:
        # given a task stopped after its slot at t=0
        backend.periodic_register("tick", at(0))
        backend.periodic_set("tick", False, at(0))
        # when it is turned on again at t=3000, the latest slot then
        backend.periodic_set("tick", True, at(3000))
        # then the slots it missed, and the current one, do not fire; the next one does
        for slot in (300, 600, 3000):
            assert backend.periodic_fire("tick", at(slot), build(mill, at(3001)), at(3001)) is None
        assert backend.periodic_fire("tick", at(3300), build(mill, at(3300)), at(3300)) is not None

    def test_turning_on_a_periodic_task_that_is_on_keeps_its_last_slot(
            self, backend: Backend, mill: Mill) -> None:
        # given a task that is on since slot t=300, when it is turned on again at t=900
        backend.periodic_register("tick", at(300))
        backend.periodic_set("tick", True, at(900))
        # then its last slot stays, and the slot after it still fires
        assert backend.periodic_states()["tick"].last_slot == at(300)
        assert backend.periodic_fire("tick", at(600), build(mill, at(600)), at(600)) is not None

    def periodic_mill(self, url: str, backend: Backend, clock: FakeClock, hits: list[datetime]) -> Mill:
        """A mill with one task that runs every five minutes and records when it ran."""
        mill = Mill(url, clock=clock, backend=backend)

        @mill.task(every="5m")
        def tick(ctx: Any) -> None:
            hits.append(mill.now())

        return mill

    def test_a_periodic_task_seen_for_the_first_time_starts_at_its_next_slot(
            self, url: str, backend: Backend, second_backend: Backend, clock: FakeClock) -> None:
        # given a mill with a task every five minutes, first seen at 00:02
        hits: list[datetime] = []
        mill = self.periodic_mill(url, backend, clock, hits)
        clock.set(at("2m"))
        # then nothing fires before 00:05
        assert Maintenance(mill).fire_periodic(clock()) == 0
        clock.set(at("4m59s"))
        assert Maintenance(mill).fire_periodic(clock()) == 0 and mill.jobs() == []
        # at 00:05 its slot fires once, even when two workers' maintenance both run
        clock.set(at("5m"))
        assert Maintenance(mill).fire_periodic(clock()) == 1
        twin = self.periodic_mill(url, second_backend, clock, hits)
        assert Maintenance(twin).fire_periodic(clock()) == 0
        assert Maintenance(mill).fire_periodic(clock()) == 0
        [job] = mill.jobs()
        assert (job.task, job.state) == ("tick", QUEUED)

    def test_missed_periodic_slots_are_not_caught_up(
            self, url: str, backend: Backend, clock: FakeClock) -> None:
        # given a task every five minutes that fired at 00:05
        hits: list[datetime] = []
        mill = self.periodic_mill(url, backend, clock, hits)
        Maintenance(mill).fire_periodic(clock())
        clock.set(at("5m"))
        assert drain(mill)["succeeded"] == 1
        # when no worker ran for half an hour
        clock.set(at("35m30s"))
        # then only the latest missed slot runs, once
        drain(mill)
        drain(mill)
        assert hits == [at("5m"), at("35m30s")]

    def test_stop_periodic_removes_its_pending_jobs_and_start_does_not_catch_up(
            self, url: str, backend: Backend, clock: FakeClock) -> None:
        # given a task every five minutes with a slot fired but not yet run
        hits: list[datetime] = []
        mill = self.periodic_mill(url, backend, clock, hits)
        maintenance = Maintenance(mill)
        maintenance.fire_periodic(clock())
        clock.set(at("5m"))
        assert maintenance.fire_periodic(clock()) == 1
        # when it is stopped, its pending job goes, and no slot fires
        assert mill.stop_periodic("tick") == 1 and mill.jobs() == []
        clock.set(at("20m"))
        assert maintenance.fire_periodic(clock()) == 0
        # when it is started again, the slots missed meanwhile do not fire; the next one does
        mill.start_periodic("tick")
        assert maintenance.fire_periodic(clock()) == 0
        clock.set(at("25m"))
        assert maintenance.fire_periodic(clock()) == 1
        assert hits == []

