"""Prometheus metrics of the pipeline, computed from the audit stream.

The audit consumer already sees every task message and lifecycle event, so it is the one
place that can count jobs, durations, bytes and retries for the whole fleet without asking
each worker. ``mediaapp audit --metrics-port 9808`` serves them (beside Flower's own
``/metrics``). Queue depths (audit lag, dead letters) are read from the broker at scrape time.

Metric names (all prefixed ``mediaapp_``; the README lists them too):

- ``jobs_total{state}`` (counter): jobs that finished, SUCCESS or FAILURE
- ``jobs_cancelled_total`` (counter): jobs cancelled on request
- ``job_duration_seconds`` (histogram): run time of a job's root task
- ``step_duration_seconds{task}`` (histogram): run time of each task
- ``encode_speed_ratio`` (histogram): media seconds encoded per wall second (x realtime)
- ``rendition_vmaf`` (histogram): VMAF mean of each rendition scored (profiles with
  ``quality.measure``), so a fleet-wide drop in quality shows without opening manifests
- ``bytes_in_total``, ``bytes_out_total`` (counters): input read, outputs written
- ``task_retries_total{task}`` (counter): retries scheduled
- ``dead_lettered_total{task}`` (counter): tasks failed for good (message dead-lettered)
- ``messages_audited_total{kind}`` (counter): audit records written (task, event, rejected)
- ``tenant_jobs_total{tenant,state}`` (counter): jobs of a tenant that finished or were cancelled
- ``tenant_steps_started_total{tenant}`` (counter): steps a tenant's jobs started
- ``tenant_deferred_total{tenant}`` (counter): steps put back in the queue by the tenant's cap
- ``queue_messages{queue}`` (gauge): messages waiting per queue, read at scrape time
- ``audit_lag_messages`` (gauge): messages waiting in audit_queue
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mediaapp.jobs import routing

log = logging.getLogger(__name__)

_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_SPEED_BUCKETS = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)
#: Fine where renditions live (80 to 100: good to transparent), coarse below.
_VMAF_BUCKETS = (20, 40, 60, 70, 80, 85, 90, 93, 95, 97, 99, 100)


class QueueDepths(Collector):
    """Queue depths asked of the broker when Prometheus scrapes."""

    def __init__(self, connection_factory: Any) -> None:
        self._connect = connection_factory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One gauge per queue, plus the audit lag on its own."""
        depths = GaugeMetricFamily(
            "mediaapp_queue_messages", "Messages waiting in each queue", labels=["queue"]
        )
        lag = GaugeMetricFamily("mediaapp_audit_lag_messages", "Messages waiting in audit_queue")
        try:
            with self._connect() as conn:
                for queue in routing.TOPOLOGY:
                    _, messages, _ = queue(conn.default_channel).queue_declare(passive=True)
                    depths.add_metric([queue.name], messages)
                    if queue is routing.AUDIT_QUEUE:
                        lag.add_metric([], messages)
        except Exception:  # a scrape must not fail because the broker hiccups
            log.warning("queue depths unavailable", exc_info=True)
        yield depths
        yield lag


class PipelineMetrics:
    """Counters and histograms fed one audit record at a time."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs = Counter("mediaapp_jobs", "Jobs finished, by state", ["state"], registry=r)
        self.cancelled = Counter("mediaapp_jobs_cancelled", "Jobs cancelled", registry=r)
        self.job_duration = Histogram(
            "mediaapp_job_duration_seconds", "Job run time", buckets=_DURATION_BUCKETS, registry=r
        )
        self.step_duration = Histogram(
            "mediaapp_step_duration_seconds",
            "Task run time",
            ["task"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.speed = Histogram(
            "mediaapp_encode_speed_ratio",
            "Media seconds per wall second",
            buckets=_SPEED_BUCKETS,
            registry=r,
        )
        self.vmaf = Histogram(
            "mediaapp_rendition_vmaf",
            "VMAF mean of each rendition scored",
            buckets=_VMAF_BUCKETS,
            registry=r,
        )
        self.bytes_in = Counter("mediaapp_bytes_in", "Input bytes", registry=r)
        self.bytes_out = Counter("mediaapp_bytes_out", "Output bytes", registry=r)
        self.retries = Counter("mediaapp_task_retries", "Retries", ["task"], registry=r)
        self.dead = Counter(
            "mediaapp_dead_lettered", "Tasks failed for good (dead-lettered)", ["task"], registry=r
        )
        # Fair share: per-tenant figures (tenant names are bounded, tenants.SAFE_TENANT).
        self.tenant_jobs = Counter(
            "mediaapp_tenant_jobs", "Jobs ended, by tenant", ["tenant", "state"], registry=r
        )
        self.tenant_started = Counter(
            "mediaapp_tenant_steps_started", "Steps started, by tenant", ["tenant"], registry=r
        )
        self.tenant_deferred = Counter(
            "mediaapp_tenant_deferred", "Steps deferred by the tenant cap", ["tenant"], registry=r
        )
        self.audited = Counter(
            "mediaapp_messages_audited", "Audit records written", ["kind"], registry=r
        )

    def observe(self, record: dict[str, Any]) -> None:
        """Update the metrics with one audit record (duplicates are ignored)."""
        if record.get("duplicate"):
            return
        self.audited.labels(record.get("kind") or "unknown").inc()
        if record.get("kind") != "event":
            return
        body = record.get("body") or {}
        name = record.get("name")
        task = body.get("task") or "unknown"
        if body.get("tenant"):
            self._observe_tenant(name, body)
        if name == "task.succeeded":
            self._observe_run(task, body)
            if body.get("bytes_in"):
                self.bytes_in.inc(body["bytes_in"])
            if body.get("bytes_out"):
                self.bytes_out.inc(body["bytes_out"])
            if body.get("speed"):
                self.speed.observe(body["speed"])
            for score in body.get("vmaf_means") or ():
                self.vmaf.observe(score)
        elif name == "task.failed":
            self._observe_run(task, body)
            self.dead.labels(task).inc()
        elif name == "task.retried":
            self.retries.labels(task).inc()
        elif name == "job.finished":
            self.jobs.labels(body.get("state") or "UNKNOWN").inc()
            if body.get("runtime_s") is not None:
                self.job_duration.observe(body["runtime_s"])
        elif name == "job.cancelled":
            self.cancelled.inc()

    def _observe_tenant(self, name: Any, body: dict[str, Any]) -> None:
        tenant = str(body["tenant"])
        if name == "job.finished":
            self.tenant_jobs.labels(tenant, body.get("state") or "UNKNOWN").inc()
        elif name == "job.cancelled":
            self.tenant_jobs.labels(tenant, "CANCELLED").inc()
        elif name == "task.started":
            self.tenant_started.labels(tenant).inc()
        elif name == "task.deferred":
            self.tenant_deferred.labels(tenant).inc()

    def _observe_run(self, task: str, body: dict[str, Any]) -> None:
        if body.get("runtime_s") is not None:
            self.step_duration.labels(task).observe(body["runtime_s"])

    def serve(self, port: int, connection_factory: Any, address: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` on ``port`` (a daemon thread), queue depths included."""
        self.registry.register(QueueDepths(connection_factory))
        start_http_server(port, addr=address, registry=self.registry)
