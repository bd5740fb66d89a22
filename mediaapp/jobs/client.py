"""Submitting jobs from Python: ``submit("clip.mp4", profile="web").wait()``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery
from celery.exceptions import ChordError

from mediaapp.errors import (
    InputOutsideRoot,
    InvalidInput,
    JobCancelled,
    JobFailed,
    JobTimeout,
    MediaError,
)
from mediaapp.jobs import job, tenants
from mediaapp.jobs.outage import BACKEND_ERRORS, waiting_out_outage
from mediaapp.jobs.progress import CANCELLED, PROGRESS
from mediaapp.jobs.watch import Watch
from mediaapp.limits import check_name_length
from mediaapp.media.profiles import get_profile
from mediaapp.settings import get_settings
from mediaapp.storage.urls import is_url
from mediaapp.storage.urls import parse as parse_url


def _app() -> Celery:
    from mediaapp.jobs.app import app

    return app


def media_name(path: str | Path, media_root: Path | None = None) -> str:
    """The name a worker will resolve: ``path`` relative to the media root, or an
    ``s3://bucket/key`` URL (checked against ``MEDIAAPP_S3_BUCKETS``).

    A path that exists from here (absolute, or relative to the current directory) must lie
    inside the media root; any other relative name is taken as relative to the root. The
    worker checks again: this only makes mistakes fail early, in the caller.
    """
    if is_url(path):  # s3://bucket/key: the bucket allow-list and key confinement, here too
        return str(parse_url(str(path), get_settings().allowed_buckets))
    root = (media_root or get_settings().media_root).resolve()
    check_name_length(str(path))
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{path!r}: file name is not valid UTF-8; rename the file") from None
    p = Path(path)
    local = p if p.is_absolute() else Path.cwd() / p
    if not p.is_absolute() and not local.exists():
        return str(p)  # a name relative to the media root; the worker resolves and checks it
    resolved = local.resolve()
    if not resolved.is_relative_to(root):
        raise InputOutsideRoot(f"{path}: outside the media root {root}")
    return str(resolved.relative_to(root))


class Job:
    """A submitted job: its id, its state, and its manifest once done."""

    def __init__(self, job_id: str, *, app: Celery | None = None, name: str | None = None) -> None:
        self.id = job_id
        self.name = name
        self._app = app or _app()
        self._result = self._app.AsyncResult(job_id)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.status()}>"

    def status(self) -> str:
        """PENDING, STARTED, PROGRESS, RETRY, SUCCESS, FAILURE or CANCELLED."""
        return str(self._result.state)

    def steps(self) -> list[dict[str, Any]]:
        """Each step of a fanned-out job (per-rendition rungs): id, state, percent, step."""
        rows = []
        for task_id in job.step_ids(self._app, self.id):
            result = self._app.AsyncResult(task_id)
            state, info = result.state, result.info
            meta = dict(info) if state == PROGRESS and isinstance(info, dict) else {}
            percent = 100.0 if state == "SUCCESS" else float(meta.get("percent") or 0.0)
            rows.append({"task_id": task_id, "state": state, "percent": percent, **meta})
        return rows

    @property
    def progress(self) -> dict[str, Any] | None:
        """The latest progress: percent, fps, speed, eta_s, and ``steps`` for fanned-out jobs.

        None when nothing is encoding yet (queued) or the job has ended.
        """
        return self._progress(*self._snapshot())

    def _snapshot(self) -> tuple[str, Any]:
        """State and info read in one backend call: ``AsyncResult.state`` and ``.info`` are two
        reads, and a job ending between them paired PROGRESS with the manifest."""
        meta = self._app.backend.get_task_meta(self.id)
        return str(meta.get("status")), meta.get("result")

    def _progress(self, state: str, info: Any) -> dict[str, Any] | None:
        if state == PROGRESS and isinstance(info, dict):
            meta = dict(info)
            return {**meta, "steps": [{"task_id": self.id, "state": PROGRESS, **meta}]}
        if state in ("SUCCESS", "FAILURE", CANCELLED):
            return None
        steps = self.steps()
        if not steps or all(s["state"] == "PENDING" for s in steps):
            return None
        percent = sum(s["percent"] for s in steps) / len(steps)
        return {"step": "renditions", "percent": round(percent, 1), "steps": steps}

    def wait(
        self,
        timeout: float | None = None,
        *,
        interval: float = 0.25,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Block until the job ends; return its manifest or raise :class:`JobFailed`.

        ``on_progress`` is called with :attr:`progress` whenever it may have changed. On the
        Redis backend a state change wakes the wait at once (:mod:`mediaapp.jobs.watch`);
        ``interval`` is the poll otherwise, and for the steps of a fanned-out job.
        """
        with Watch(self._app, self.id) as watch:
            return self._wait(watch, timeout, interval, on_progress)

    def _wait(
        self,
        watch: Watch,
        timeout: float | None,
        interval: float,
        on_progress: Callable[[dict[str, Any]], None] | None,
    ) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                state, info = self._snapshot()
                if state == "SUCCESS":
                    manifest: dict[str, Any] = info
                    return manifest
                if state == "FAILURE":
                    raise self._failure()
                if state == CANCELLED:
                    raise JobCancelled(f"job {self.id} was cancelled")
                if on_progress is not None:
                    progress = self._progress(state, info)
                    if progress is not None:
                        on_progress(progress)
            except BACKEND_ERRORS as exc:  # Redis restarts: keep waiting (outage.py)
                state = waiting_out_outage(self.id, exc, deadline)
            if deadline is not None and time.monotonic() > deadline:
                raise JobTimeout(f"job {self.id} still {state} after {timeout:g} s")
            left = interval if deadline is None else min(interval, deadline - time.monotonic())
            watch.wait(max(left, 0.0))

    def cancel(self) -> None:
        """Stop the job: running ffmpeg killed, outputs removed; its queued steps start, see the
        cancel and stop at once (revoking one would fail a chord: the job would end FAILURE)."""
        from mediaapp.jobs.cancel import request_cancel

        request_cancel(self._app, self.id)

    def failed_step(self) -> tuple[str, BaseException] | None:
        """(task id, typed error) of the first failed step of a fanned-out job."""
        return job.failed_step(self._app, self.id)

    def _failure(self) -> JobFailed:
        exc = self._result.result
        meta = self._result._get_task_meta()
        step = meta.get("name") or "video.transcode"
        if isinstance(exc, ChordError) and (first := self.failed_step()):
            step, exc = first
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
        failed = JobFailed(f"job {self.id} failed at step {step} on {self.name or '?'}: {reason}")
        failed.__cause__ = exc if isinstance(exc, BaseException) else None
        return failed

    @property
    def error(self) -> BaseException | None:
        """The exception the job failed with (a MediaError subclass when the input was bad)."""
        exc = self._result.result if self._result.state == "FAILURE" else None
        if isinstance(exc, ChordError) and (failed := self.failed_step()):
            exc = failed[1]
        return exc if isinstance(exc, BaseException) else None


def _submit(
    task: str,
    path: str | Path,
    profile: str,
    job_id: str | None,
    app: Celery | None,
    priority: int | None = None,
    subtitles: list[dict[str, Any]] | None = None,
    tenant: str | None = None,
) -> Job:
    app = app or _app()
    name = media_name(path)
    job_id = job_id or job.new_job_id()
    job.send(app, job_id=job_id, name=name, profile=profile, task=task, priority=priority,
             subtitles=subtitles, tenant=tenant)  # fmt: skip
    return Job(job_id, app=app, name=name)


def submit(
    path: str | Path,
    profile: str = "web",
    *,
    priority: int | None = None,
    job_id: str | None = None,
    app: Celery | None = None,
    subtitles: list[dict[str, Any]] | None = None,
    tenant: str | None = None,
) -> Job:
    """Submit a transcode of ``path`` (inside the media root) with a named profile.

    ``priority`` 0..9 (9 most urgent, default 5): a job overtakes every queued job of a
    lower priority. ``subtitles``: sidecar files, ``[{"path": "clip.srt", "language": "en"}]``
    (inside the media root too), carried as WebVTT renditions (README: Captions).
    ``tenant``: whose job it is; a tenant with a backlog cannot starve the others (README:
    Per-tenant fair share).
    """
    # Fail fast in the caller for a typo; the worker checks again.
    get_profile(profile, get_settings().profiles_dir)
    job.check_priority(priority)
    tenants.check_tenant(tenant)
    sidecars = [
        {**s, "path": media_name(s["path"])}
        for s in subtitles or ()
        if isinstance(s, dict) and "path" in s
    ]
    if subtitles and len(sidecars) != len(subtitles):
        raise InvalidInput("subtitles: each one is {'path': ..., 'language': ...}")
    return _submit(
        "video.transcode", path, profile, job_id, app, priority, sidecars or None, tenant
    )


def probe(
    path: str | Path,
    *,
    priority: int | None = None,
    job_id: str | None = None,
    app: Celery | None = None,
    tenant: str | None = None,
) -> Job:
    """Submit a probe of ``path``; the result is its streams and numbers."""
    return _submit("video.probe", path, "", job_id, app, priority, tenant=tenant)


def thumbnail(
    path: str | Path,
    *,
    priority: int | None = None,
    job_id: str | None = None,
    app: Celery | None = None,
    tenant: str | None = None,
) -> Job:
    """Submit a poster-JPEG job for ``path``."""
    return _submit("video.thumbnail", path, "", job_id, app, priority, tenant=tenant)


__all__ = ["Job", "MediaError", "media_name", "probe", "submit", "thumbnail"]
