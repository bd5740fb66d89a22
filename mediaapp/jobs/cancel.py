"""Cancelling a job: a flag every step checks, plus a revoke that drops queued messages.

The flag lives in the result backend (Redis, or the file backend on the embedded broker), so a
worker that was down when the revoke was broadcast still sees it. A running step checks it with
every progress tick; raising :class:`~mediaapp.errors.JobCancelled` there unwinds through
:func:`mediaapp.ffmpeg.run`, which kills ffmpeg's whole process group.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from mediaapp.errors import JobCancelled
from mediaapp.jobs import job, outage
from mediaapp.jobs.outage import BACKEND_ERRORS


def request_cancel(app: Celery, job_id: str) -> None:
    """Ask every step of ``job_id`` to stop; its queued messages with the job id (the job, a
    chord's body) are revoked outright. A fanned-out job's other steps are not: a revoked
    chord part fails the chord (the job ended FAILURE, a ChordError), while a step that
    starts sees the flag at once and ends the job CANCELLED."""
    app.backend.set(job.cancel_key(job_id), b"1")
    app.control.revoke(job_id)


def is_cancelled(backend: Any, job_id: str) -> bool:
    """True once :func:`request_cancel` was called for ``job_id``."""
    return bool(backend.get(job.cancel_key(job_id)))


def raise_if_cancelled(backend: Any, job_id: str) -> None:
    """Raise :class:`JobCancelled` if the job was cancelled (called at start and on progress).

    While the result backend is unreachable the flag cannot be read: the job is taken as not
    cancelled for up to the grace period (the check runs again on the next tick), then
    :class:`~mediaapp.errors.BackendUnavailable` (retryable) is raised.
    """
    try:
        cancelled = is_cancelled(backend, job_id)
    except BACKEND_ERRORS as exc:
        outage.BACKEND.failed("the cancel check", exc)
        return
    outage.BACKEND.ok()
    if cancelled:
        raise JobCancelled(f"job {job_id} was cancelled")
