"""The policy every step of a job shares, in one base class (dramatiq's middleware, as a
Celery ``Task``): refuse poison messages, honour cancel, report progress, retry what the
error tree calls retryable, and fall back to software when a hardware encoder fails. A task
in ``tasks/`` then reads as one call into the media layer.
"""

from __future__ import annotations

import random
from typing import Any, NoReturn

from celery import Task, signals, states
from celery.exceptions import Ignore

from mediaapp import defaults
from mediaapp.errors import EncoderFault, JobCancelled, MediaError, PoisonMessage
from mediaapp.jobs import fallback, tenants
from mediaapp.jobs.cancel import is_cancelled, raise_if_cancelled
from mediaapp.jobs.deliveries import count_delivery, counted_id
from mediaapp.jobs.events import publish_event
from mediaapp.jobs.progress import CANCELLED, PROGRESS, ProgressReporter
from mediaapp.media import phases
from mediaapp.media.context import JobContext
from mediaapp.media.outputs import discard_outputs
from mediaapp.settings import Settings, get_settings
from mediaapp.storage import publish as publication
from mediaapp.storage import remote_outputs


def backoff_s(
    retries: int,
    base: float = defaults.RETRY_BACKOFF_S,
    cap: float = defaults.RETRY_BACKOFF_MAX_S,
) -> float:
    """Exponential back-off with full jitter: a retry storm spreads out instead of syncing up."""
    return random.uniform(0, min(cap, base * 2**retries))  # noqa: S311 - jitter, not crypto


class MediaStep(Task):
    """Base of every ``video.*`` task whose kwargs carry ``job_id`` (and ``context``)."""

    @property
    def settings(self) -> Settings:
        """This process's settings."""
        return get_settings()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Celery calls this inside its tracer with the request already set (so no
        # super().__call__, which would push a second request without the message's id).
        job_id = kwargs.get("job_id")
        tenant = kwargs.get("tenant")
        cap = self.settings.cap_of(tenant) if tenant else 0
        if tenant and cap:  # before the delivery count: a deferred step is no poison delivery
            self._within_cap(tenant, cap)
        try:
            self._check_deliveries()
            if job_id:
                raise_if_cancelled(self.backend, job_id)
            with (
                phases.collecting(),  # the manifest's phases_s: where the step's time went
                fallback.encoding(self, self.settings),  # hardware encoder, or software
            ):
                return self.run(*args, **kwargs)
        except JobCancelled as exc:
            self._cancelled(job_id or self.request.id, exc)
        except EncoderFault as exc:  # the device failed: disable it here, re-run in software
            fallback.fall_back(self, exc)
        except MediaError as exc:
            self._fail_or_retry(exc)
        finally:
            if tenant and cap:
                tenants.leave(self.backend, self.request.id, tenant)

    def context(self, labels: dict[str, Any]) -> JobContext:
        """The job's context from a step's kwargs (built by the transcode step, no probe)."""
        return JobContext.from_dict(labels["context"], self.settings)

    def progress(self, step: str) -> ProgressReporter:
        """A progress callback for this step's ffmpeg: PROGRESS states, Flower events, and
        the cancel check on every tick."""
        kwargs = self.request.kwargs or {}
        job_id = kwargs.get("job_id")
        context = kwargs.get("context") or {}
        labels = {"input": kwargs.get("name"), "job_id": job_id}
        labels["profile"] = kwargs.get("profile") or context.get("profile")
        return ProgressReporter(
            self._report_progress,
            step=step,
            context=labels,
            check=(lambda: raise_if_cancelled(self.backend, job_id)) if job_id else None,
        )

    def _report_progress(self, meta: dict[str, Any]) -> None:
        """PROGRESS in the result backend (clients) and as a task event (Flower shows it)."""
        self.update_state(state=PROGRESS, meta=meta)
        if self.app.conf.worker_send_task_events:
            # Flower keeps only the fields it knows; "result" is one, so the live figures go
            # there until the real result replaces them.
            summary = f"{meta.get('step')} {meta.get('percent') or 0:.1f}% at {meta.get('speed')}x"
            self.send_event("task-progress", result=summary, **meta)

    def _check_deliveries(self) -> None:
        """Refuse a message that keeps killing (or outliving) its workers: dead-letter it."""
        task_id = counted_id(self.request.id, self.request.kwargs)
        count = count_delivery(self.backend, task_id, self.request.retries)
        if count > defaults.MAX_DELIVERIES:
            name = (self.request.kwargs or {}).get("name")
            raise PoisonMessage(
                f"{self.name} on {name!r}: delivered {count} times, each attempt died with its "
                f"worker (limit {defaults.MAX_DELIVERIES})"
            )

    def _within_cap(self, tenant: str, cap: int) -> None:
        """Count this step against its tenant's cap; over it, put the step back in its queue
        (same id, retries and priority, after a short jittered delay) and drop this delivery:
        not a failure, not a retry, not a poison delivery."""
        running = tenants.enter(self.backend, self.request.id, tenant, cap)
        if running is None:
            return
        delay = defaults.TENANT_DEFER_S * random.uniform(1, 1.5)  # noqa: S311 - jitter
        self.signature_from_request(countdown=delay).apply_async()
        self.backend.store_result(self.request.id, None, states.PENDING)  # queued again
        publish_event(self.app, "task.deferred", task=self.name, task_id=self.request.id,
                      job_id=(self.request.kwargs or {}).get("job_id"), tenant=tenant,
                      running=running, cap=cap, countdown_s=round(delay, 2))  # fmt: skip
        raise Ignore()

    def _fail_or_retry(self, exc: MediaError) -> NoReturn:
        """Retry what is worth retrying, up to the configured limit; fail the rest at once."""
        if exc.retryable and self.request.retries < self.settings.max_retries:
            raise self.retry(exc=exc, countdown=backoff_s(self.request.retries))
        raise exc

    def _cancelled(self, job_id: str, exc: JobCancelled) -> NoReturn:
        """Record a cancelled job: outputs removed, state CANCELLED, audited; no retry."""
        self.update_state(state=CANCELLED, meta=exc.to_dict())
        record_cancel(self, job_id, self.request.id, (self.request.kwargs or {}).get("tenant"))
        raise Ignore()  # keep the CANCELLED state; the message is done with


def record_cancel(task: Task, job_id: str, task_id: str, tenant: str | None) -> None:
    """A cancelled job's end: its outputs removed (and what it published), CANCELLED under
    the job id (a fanned-out job's step, or its chord body dropped unrun), out of its tenant's
    backlog, and ``job.cancelled`` audited."""
    settings = get_settings()
    discard_outputs(job_id, settings)
    if remote_outputs(settings):  # whatever it published: manifest first, then the rest
        publication.discard_published(job_id, settings)
    tenants.release(task.backend, job_id, tenant)
    task.backend.store_result(job_id, JobCancelled(f"job {job_id} was cancelled").to_dict(),
                              CANCELLED)  # fmt: skip
    publish_event(task.app, "job.cancelled", job_id=job_id, task_id=task_id, task=task.name,
                  tenant=tenant)  # fmt: skip


def _on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    """A queued step that a cancel revoked is dropped unrun, so no check above sees the flag:
    record the cancel here. A fanned-out job's chord body carries the job id (a per-title
    search queues one every round): dropped, it left the job REVOKED, its outputs and
    ``.pertitle`` folder on disk, no ``job.cancelled``, and :meth:`Job.wait` waiting."""
    kwargs = getattr(request, "kwargs", None) or {}
    job_id = kwargs.get("job_id")
    if isinstance(sender, MediaStep) and job_id and is_cancelled(sender.backend, job_id):
        record_cancel(sender, job_id, getattr(request, "id", job_id), kwargs.get("tenant"))


_connected = False


def connect_signals() -> None:
    """Record the cancel of a step revoked while queued (once per process)."""
    global _connected
    if _connected:
        return
    _connected = True
    signals.task_revoked.connect(_on_revoked, weak=False)
