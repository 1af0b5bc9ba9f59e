"""Scheduler duties, run inside workers: promote due jobs, rescue expired leases, fire periodic
slots, prune old finished jobs. Each is safe to run in every worker at once: promotion is one
statement, a rescue is guarded by the claim token, a periodic slot is a unique key, pruning only
deletes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from . import transitions
from .job import Job, JobState

if TYPE_CHECKING:
    from .mill import Mill

log = logging.getLogger("taskmill.maintenance")
PRUNE_EVERY = 300.0


@dataclass
class Report:
    promoted: int = 0
    rescued: int = 0
    fired: int = 0
    pruned: int = 0


class Maintenance:
    def __init__(self, mill: Mill, after_rescue: Callable[[Job, Job], None] | None = None) -> None:
        self.mill = mill
        self.after_rescue = after_rescue
        self._last_prune: datetime | None = None

    def run_once(self, now: datetime) -> Report:
        report = Report()
        backend = self.mill.backend
        report.promoted = backend.promote_due(now, 1000)
        report.rescued = self.rescue(now)
        report.fired = self.fire_periodic(now)
        if self._last_prune is None or (now - self._last_prune).total_seconds() >= PRUNE_EVERY:
            self._last_prune = now
            report.pruned = backend.prune(now - timedelta(seconds=self.mill.retention), 10_000)
        if report.promoted or report.rescued or report.fired:
            backend.notify()
        return report

    def rescue(self, now: datetime) -> int:
        """Running jobs whose worker stopped heart-beating go through a failed attempt."""
        count = 0
        for job in self.mill.backend.expired(now, 100):
            update = transitions.rescue(job, now, self.mill.rng)
            if self.mill.backend.apply([update], now)[0]:
                count += 1
                log.warning("job %s (%s) rescued from %s: now %s", job.id, job.task, job.worker,
                            update.job.state.value)
                update.job._mill = self.mill
                self.mill.emit("rescued", update.job)
                if self.after_rescue is not None:
                    self.after_rescue(job, update.job)
        return count

    def fire_periodic(self, now: datetime) -> int:
        """Enqueue each periodic task's latest due slot, once; a new one starts at its next slot."""
        periodic = [d for d in self.mill.registry.values() if d.schedule is not None]
        if not periodic:
            return 0
        backend = self.mill.backend
        states = backend.periodic_states()
        fired = 0
        for definition in periodic:
            assert definition.schedule is not None
            slot = definition.schedule.latest(now)
            state = states.get(definition.name)
            if state is None:
                backend.periodic_register(definition.name, slot)
                continue
            if not state.enabled or (state.last_slot is not None and state.last_slot >= slot):
                continue
            try:
                job = self.mill.build(definition.name, now=now,
                                      title=f"{definition.name} @ {slot.isoformat()}")
            except Exception as exc:  # one broken definition (or hook) must not stop the others
                log.error("periodic task %s cannot be enqueued: %s", definition.name, exc)
                continue
            job.state, job.scheduled_at = JobState.QUEUED, now
            stored = backend.periodic_fire(definition.name, slot, job, now)
            if stored is not None:
                fired += 1
                stored._mill = self.mill
                self.mill.emit("enqueued", stored)
        return fired
