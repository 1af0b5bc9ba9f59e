"""Prometheus metrics: jobs by state and queue (read from the store at each scrape) and counters of
the lifecycle events this process sees through `mill.on_event`."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..job import Job
from ..mill import Mill

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class JobsByState(Collector):
    def __init__(self, mill: Mill) -> None:
        self.mill = mill

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("taskmill_jobs", "Jobs in the store by queue and state",
                                   labels=["queue", "state"])
        for queue, counts in self.mill.stats().items():
            for state, count in counts.items():
                family.add_metric([queue, state], count)
        yield family
        paused = GaugeMetricFamily("taskmill_queue_paused", "1 if the queue is paused",
                                   labels=["queue"])
        for queue in sorted(self.mill.paused_queues()):
            paused.add_metric([queue], 1)
        yield paused


class Metrics:
    """One registry per app (no process-global state), fed by the mill's events."""

    def __init__(self, mill: Mill) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(JobsByState(mill))
        self.events = Counter("taskmill_job_events", "Lifecycle events seen by this process",
                              ["event", "task", "queue"], registry=self.registry)
        self.failures = Counter("taskmill_job_failures", "Jobs that ended failed, by error type",
                                ["task", "error"], registry=self.registry)
        self.duration = Histogram("taskmill_job_run_seconds", "Run time of finished jobs",
                                  ["task", "state"], registry=self.registry,
                                  buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600))
        mill.on_event(self.observe)

    def observe(self, event: str, job: Job) -> None:
        self.events.labels(event, job.task, job.queue).inc()
        if not job.finished:
            return
        if event == "failed":
            self.failures.labels(job.task, job.error.type if job.error else "").inc()
        if job.started_at is not None and job.finished_at is not None:
            seconds = (job.finished_at - job.started_at).total_seconds()
            self.duration.labels(job.task, job.state.value).observe(max(0.0, seconds))

    def render(self) -> bytes:
        return generate_latest(self.registry)
