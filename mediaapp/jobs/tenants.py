"""Per-tenant fair share: a tenant's backlog lowers the priority of its next jobs.

Why this and not per-tenant queues or a dispatcher: the task queues already are RabbitMQ
priority queues, and a worker with prefetch 1 and ``acks_late`` always takes the highest
priority queued. So fairness can be decided once, when a job is published: a job whose
tenant already has ``backlog`` jobs in flight (queued or running) goes out at

    effective = max(0, priority - min(FAIR_SHARE_MAX_DEMOTION, backlog // share))

A tenant with a deep backlog sinks to the bottom levels and a tenant with nothing in flight
keeps its priority, so its jobs take the next free slots. No new process, no queue per
tenant for every worker to follow, nothing to lose if a worker dies; a raw ``video.upload``
event gets the same treatment where the worker turns it into a job.

The backlog is a Redis sorted set per tenant (job id → submit time) on the result backend:
added at submit, removed when the job ends whatever way (success, typed failure, dead
letter, cancel), both idempotent; members older than ``tenant_backlog_ttl_s`` no longer
count, so a lost removal heals by itself. The per-tenant concurrency cap is a second set
(step id → start time) checked when a step starts (:class:`~mediaapp.jobs.step.MediaStep`).
Jobs without a tenant are neither counted nor demoted; on the embedded file backend (no
Redis) fair share is off.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from celery import signals

from mediaapp import defaults
from mediaapp.errors import InvalidInput
from mediaapp.jobs.outage import BACKEND_ERRORS
from mediaapp.settings import Settings, get_settings

log = logging.getLogger(__name__)

SAFE_TENANT = re.compile(rf"[A-Za-z0-9_.@-]{{1,{defaults.MAX_TENANT_CHARS}}}")


def check_tenant(tenant: Any) -> str | None:
    """``tenant`` if it is a safe name (a Redis key part, a metric label), None if not given."""
    if tenant is None or tenant == "":
        return None
    if not isinstance(tenant, str) or not SAFE_TENANT.fullmatch(tenant):
        raise InvalidInput(
            f"tenant {str(tenant)[:80]!r} is not a safe name "
            f"(A-Z a-z 0-9 _ . @ -, 1-{defaults.MAX_TENANT_CHARS})"
        )
    return tenant


def effective_priority(priority: int, backlog: int, share: int) -> int:
    """The priority a job goes out at when its tenant has ``backlog`` jobs in flight."""
    demotion = min(defaults.FAIR_SHARE_MAX_DEMOTION, backlog // max(1, share))
    return max(0, priority - demotion)


def backlog_key(tenant: str) -> str:
    """Jobs of ``tenant`` in flight (sorted set: job id → submit time)."""
    return f"mediaapp:tenant:{tenant}:backlog"


def running_key(tenant: str) -> str:
    """Steps of ``tenant`` running now (sorted set: task id → start time)."""
    return f"mediaapp:tenant:{tenant}:running"


def _redis(backend: Any) -> Any:
    client = getattr(backend, "client", None)
    return client if client is not None and hasattr(client, "zadd") else None


def admit(backend: Any, job_id: str, tenant: str | None, priority: int) -> int:
    """Count ``job_id`` in its tenant's backlog; return the priority to publish it at.

    Never fails the submit: without Redis (or while it is down) the job keeps its priority.
    """
    client = _redis(backend)
    if tenant is None or client is None:
        return priority
    settings = get_settings()
    key, now = backlog_key(tenant), time.time()
    try:
        pipe = client.pipeline()
        pipe.zremrangebyscore(key, "-inf", now - settings.tenant_backlog_ttl_s)
        pipe.zcard(key)
        pipe.zadd(key, {job_id: now}, nx=True)
        pipe.expire(key, int(settings.tenant_backlog_ttl_s))
        _, backlog, _, _ = pipe.execute()
    except BACKEND_ERRORS as exc:
        log.warning("tenant %s: backlog unavailable (%s), job %s not demoted", tenant, exc, job_id)
        return priority
    return effective_priority(priority, int(backlog), settings.share_of(tenant))


def release(backend: Any, job_id: str | None, tenant: str | None) -> None:
    """The job ended (any way): it no longer counts in its tenant's backlog. Never raises."""
    client = _redis(backend)
    if not (tenant and job_id and client is not None):
        return
    try:
        client.zrem(backlog_key(tenant), job_id)
    except BACKEND_ERRORS as exc:  # the TTL heals it
        log.warning("tenant %s: could not release job %s (%s)", tenant, job_id, exc)


def backlog(backend: Any, tenant: str) -> int:
    """Jobs of ``tenant`` counted in flight now (0 without Redis)."""
    client = _redis(backend)
    if client is None:
        return 0
    since = time.time() - get_settings().tenant_backlog_ttl_s
    return int(client.zcount(backlog_key(tenant), since, "+inf"))


def _stale_s(settings: Settings) -> float:
    """A step running longer than the task time limit is dead: it no longer counts."""
    return settings.ffmpeg_timeout_s + defaults.TASK_TIME_LIMIT_MARGIN_S


def enter(backend: Any, task_id: str, tenant: str, cap: int) -> int | None:
    """Count a step of ``tenant`` as running, unless that puts it over ``cap``: then the
    number running (the caller defers the step), else None. Fails open (no Redis: runs)."""
    client = _redis(backend)
    if client is None or cap <= 0:
        return None
    key, now = running_key(tenant), time.time()
    try:
        pipe = client.pipeline()
        pipe.zremrangebyscore(key, "-inf", now - _stale_s(get_settings()))
        pipe.zadd(key, {task_id: now})
        pipe.zcard(key)
        pipe.expire(key, int(_stale_s(get_settings())))
        running = int(pipe.execute()[2])
        if running <= cap:
            return None
        client.zrem(key, task_id)
        return running - 1
    except BACKEND_ERRORS as exc:
        log.warning("tenant %s: running count unavailable (%s), not capped", tenant, exc)
        return None


def leave(backend: Any, task_id: str, tenant: str) -> None:
    """The step is over: it no longer counts against its tenant's cap. Never raises."""
    client = _redis(backend)
    if client is None:
        return
    try:
        client.zrem(running_key(tenant), task_id)
    except BACKEND_ERRORS as exc:  # stale after the time limit anyway
        log.warning("tenant %s: could not release step %s (%s)", tenant, task_id, exc)


def _root(sender: Any, task_id: str | None, kwargs: Any) -> tuple[str | None, str | None]:
    """(job id, tenant) when the task that ended is a job's root (task id = job id)."""
    request = getattr(sender, "request", None)
    kwargs = kwargs or getattr(request, "kwargs", None) or {}
    task_id = task_id or getattr(request, "id", None)
    job_id = kwargs.get("job_id")
    return (job_id, kwargs.get("tenant")) if job_id and job_id == task_id else (None, None)


def _on_success(sender: Any = None, **_: Any) -> None:
    release(sender.backend, *_root(sender, None, None))


def _on_failure(
    sender: Any = None, task_id: str | None = None, kwargs: Any = None, **_: Any
) -> None:
    release(sender.backend, *_root(sender, task_id, kwargs))


def _on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    # Revoked only by a cancel: a queued step dropped unrun ends its job too.
    kwargs = getattr(request, "kwargs", None) or {}
    release(getattr(sender, "backend", None), kwargs.get("job_id"), kwargs.get("tenant"))


_connected = False


def connect_signals() -> None:
    """Release a job's backlog entry when its root task ends or a step of it is revoked (a
    cancelled job's queued step, dropped unrun), once per process. A step's failure that fails
    the job (``video.fail_job``) and a cancel seen by a running step release it where they
    happen."""
    global _connected
    if _connected:
        return
    _connected = True
    signals.task_success.connect(_on_success, weak=False)
    signals.task_failure.connect(_on_failure, weak=False)
    signals.task_revoked.connect(_on_revoked, weak=False)
