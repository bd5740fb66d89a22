"""``video.*`` tasks, routed to ``video_queue``."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from typing import Any, NoReturn

from celery import Celery, Task, chord, group
from celery.exceptions import ChordError, Ignore

from mediaapp import defaults
from mediaapp.errors import JobCancelled, MediaError, PoisonMessage
from mediaapp.jobs.app import app
from mediaapp.jobs.cancel import raise_if_cancelled
from mediaapp.jobs.client import Job, steps_key
from mediaapp.jobs.deliveries import count_delivery
from mediaapp.jobs.events import error_dict, publish_event
from mediaapp.jobs.progress import CANCELLED, PROGRESS, ProgressReporter
from mediaapp.jobs.routing import VIDEO_QUEUE
from mediaapp.media import mp4, outputs, steps
from mediaapp.media.chunkplan import ChunkPlan
from mediaapp.media.profiles import get_profile
from mediaapp.settings import get_settings

log = logging.getLogger(__name__)


def backoff_s(
    retries: int,
    base: float = defaults.RETRY_BACKOFF_S,
    cap: float = defaults.RETRY_BACKOFF_MAX_S,
) -> float:
    """Exponential back-off with full jitter: a retry storm spreads out instead of syncing up."""
    return random.uniform(0, min(cap, base * 2**retries))  # noqa: S311 - jitter, not crypto


def report_progress(task: Task, meta: dict[str, Any]) -> None:
    """PROGRESS in the result backend (clients) and as a task event (Flower shows it)."""
    task.update_state(state=PROGRESS, meta=meta)
    if task.app.conf.worker_send_task_events:
        # Flower keeps only the fields it knows; "result" is one, so the live figures go there
        # until the real result replaces them.
        summary = f"{meta.get('step')} {meta.get('percent') or 0:.1f}% at {meta.get('speed')}x"
        task.send_event("task-progress", result=summary, **meta)


def check_deliveries(task: Task) -> None:
    """Refuse a message that keeps killing (or outliving) its workers: dead-letter it."""
    count = count_delivery(task.backend, task.request.id, task.request.retries)
    if count > defaults.MAX_DELIVERIES:
        name = (task.request.kwargs or {}).get("name")
        raise PoisonMessage(
            f"{task.name} on {name!r}: delivered {count} times, each attempt died with its "
            f"worker (limit {defaults.MAX_DELIVERIES})"
        )


def _fail_or_retry(task: Task, exc: MediaError) -> NoReturn:
    """Retry what is worth retrying, up to the configured limit; fail everything else at once."""
    if exc.retryable and task.request.retries < get_settings().max_retries:
        raise task.retry(exc=exc, countdown=backoff_s(task.request.retries))
    raise exc


def _cancelled(task: Task, job_id: str, exc: JobCancelled) -> NoReturn:
    """Record a cancelled job: outputs removed, state CANCELLED, audited; nothing to retry."""
    outputs.discard_outputs(job_id, get_settings())
    task.update_state(state=CANCELLED, meta=exc.to_dict())
    if task.request.id != job_id:  # a step of a fanned-out job: the job itself is cancelled
        task.backend.store_result(job_id, exc.to_dict(), CANCELLED)
    publish_event(task.app, "job.cancelled", job_id=job_id, task_id=task.request.id, task=task.name)
    raise Ignore()  # keep the CANCELLED state; the message is done with


@app.task(name="video.transcode", bind=True)
def transcode(
    self: Task,
    probed: dict[str, Any] | None = None,
    *,
    job_id: str,
    name: str,
    profile: str = "web",
) -> dict[str, Any]:
    """Transcode one input with a named profile; the result is the job manifest (or the
    job becomes a chord: one task per rung, or per chunk, see ``_fan_out``/``_chunk_out``)."""
    return _step(self, job_id, "transcode", lambda report: _transcode(
        self, job_id, name, profile, report, probed=probed))  # fmt: skip


def _transcode(
    task: Task,
    job_id: str,
    name: str,
    profile: str,
    report: ProgressReporter,
    *,
    probed: dict[str, Any] | None,
) -> dict[str, Any]:
    settings = get_settings()
    if (
        settings.ladder_strategy == "per_rendition"
        and get_profile(profile, settings.profiles_dir).kind == "hls"
    ):
        _fan_out(task, job_id, name, profile)
    workers = video_workers(task.app) if settings.chunking != "never" else 1
    # With one worker "auto" never chunks: skip the plan (a probe) on the common path.
    if settings.chunking == "always" or (settings.chunking == "auto" and workers > 1):
        plan = steps.chunk_plan(name, profile, settings, workers, probed)
        log.info("job %s: chunked=%s (%s)", job_id, plan.chunked, plan.reason)
        if plan.chunked:
            _chunk_out(task, job_id, name, profile, plan)
    return steps.transcode(job_id, name, profile, settings, on_progress=report,
                              strategy=settings.ladder_strategy, probed=probed)  # fmt: skip


def _fan_out(task: Task, job_id: str, name: str, profile: str) -> NoReturn:
    """Replace this task with one task per rung and a packaging task (a chord).

    The packaging task inherits this task's id (the job id), so the job's result is still
    the manifest; each rung task has the id ``<job id>-rung<i>``.
    """
    indexes = steps.plan_renditions(job_id, name, profile, get_settings())
    ids = [rendition_task_id(job_id, i) for i in indexes]
    task.backend.set(steps_key(job_id), json.dumps(ids).encode())
    header = group(
        rung.s(job_id=job_id, name=name, profile=profile, index=i).set(
            task_id=rendition_task_id(job_id, i)
        )
        for i in indexes
    )
    raise task.replace(chord(header, package.s(job_id=job_id, name=name, profile=profile)))


def video_workers(app: Celery) -> int:
    """Workers a chunked job can spread over: the setting, else video_queue's consumers."""
    settings = get_settings()
    if settings.chunk_workers:
        return settings.chunk_workers
    if settings.embedded:
        return 1  # the filesystem transport does not count consumers
    try:
        with app.connection_for_read() as conn:
            queue = conn.default_channel.queue_declare(VIDEO_QUEUE.name, passive=True)
    except Exception:  # the broker did not answer: plan for one worker, never fail the job
        log.warning("could not count video_queue consumers", exc_info=True)
        return 1
    return max(1, int(queue.consumer_count))


def _chunk_out(task: Task, job_id: str, name: str, profile: str, plan: ChunkPlan) -> NoReturn:
    """Split the source, then replace this task with a chord: one task per chunk, the audio
    track and the previews (mp4) beside them, and ``video.assemble`` (task id = job id)."""
    chunks = steps.split_job(job_id, name, plan.chunk_s, get_settings())
    kwargs = {"job_id": job_id, "name": name, "profile": profile}
    # Longest first, so no long task starts last and stretches the job: the previews (a
    # decode of the whole source), then the chunks, then the audio (the quickest).
    header = []
    if get_profile(profile, get_settings().profiles_dir).kind == "mp4":
        header.append(previews.s(**kwargs).set(task_id=f"{job_id}-previews"))
    header += [
        encode_chunk.s(chunk=c, **kwargs).set(task_id=f"{job_id}-chunk{c['index']}") for c in chunks
    ]
    header.append(encode_audio.s(**kwargs).set(task_id=f"{job_id}-audio"))
    task.backend.set(steps_key(job_id), json.dumps([sig.id for sig in header]).encode())
    body = assemble.s(plan=plan.to_dict(), **kwargs)
    raise task.replace(chord(group(header), body))


def _step(
    task: Task, job_id: str, step: str, work: Callable[[ProgressReporter], dict[str, Any]]
) -> dict[str, Any]:
    """Run one step of a job: refuse poison messages, honour cancel, report progress, and
    retry what is worth retrying."""
    context = {"job_id": job_id, **{k: task.request.kwargs.get(k) for k in ("name", "profile")}}
    report = ProgressReporter(
        lambda meta: report_progress(task, meta),
        step=step,
        context={"input": context.pop("name"), **context},
        check=lambda: raise_if_cancelled(task.backend, job_id),
    )
    check_deliveries(task)
    try:
        raise_if_cancelled(task.backend, job_id)
        return work(report)
    except JobCancelled as exc:
        _cancelled(task, job_id, exc)
    except MediaError as exc:
        _fail_or_retry(task, exc)


@app.task(name="video.chunk", bind=True)
def encode_chunk(
    self: Task, *, job_id: str, name: str, profile: str, chunk: dict[str, Any]
) -> dict[str, Any]:
    """Encode one chunk of a chunked job into every rendition (or reuse it by content)."""
    return _step(self, job_id, f"chunk {chunk['index']}", lambda report: steps.encode_job_chunk(
        job_id, name, profile, chunk, get_settings(), report))  # fmt: skip


@app.task(name="video.audio", bind=True)
def encode_audio(self: Task, *, job_id: str, name: str, profile: str) -> dict[str, Any]:
    """Encode a chunked job's audio track, once."""
    return _step(self, job_id, "audio", lambda report: steps.encode_job_audio(
        job_id, name, profile, get_settings(), report))  # fmt: skip


@app.task(name="video.previews", bind=True)
def previews(self: Task, *, job_id: str, name: str, profile: str) -> dict[str, Any]:
    """Poster, sprite sheet and WebVTT track of a chunked mp4 job."""
    return _step(self, job_id, "previews", lambda _: steps.job_previews(
        job_id, name, profile, get_settings()))  # fmt: skip


@app.task(name="video.assemble", bind=True)
def assemble(
    self: Task,
    parts: list[dict[str, Any]],
    *,
    job_id: str,
    name: str,
    profile: str,
    plan: dict[str, Any],
) -> dict[str, Any]:
    """Join the chunks, add the audio, package and verify; the result is the job manifest."""
    return _step(self, job_id, "assemble", lambda _: steps.assemble_chunked(
        job_id, name, profile, parts, plan, get_settings()))  # fmt: skip


def rendition_task_id(job_id: str, index: int) -> str:
    """Task id of rung ``index`` of a per-rendition job (clients derive it to show progress)."""
    return f"{job_id}-rung{index}"


@app.task(name="video.rung", bind=True)
def rung(self: Task, *, job_id: str, name: str, profile: str, index: int) -> dict[str, Any]:
    """Encode one rung of a ladder (per-rendition strategy: rungs spread across workers)."""
    return _step(self, job_id, f"rung {index}", lambda report: steps.encode_rendition(
        job_id, name, profile, index, get_settings(), report))  # fmt: skip


@app.task(name="video.package", bind=True)
def package(
    self: Task, rungs: list[dict[str, Any]], *, job_id: str, name: str, profile: str
) -> dict[str, Any]:
    """Package the rungs (master playlist, verification); the result is the job manifest."""
    return _step(self, job_id, "package", lambda _: steps.package_renditions(
        job_id, name, profile, rungs, get_settings()))  # fmt: skip


@app.task(name="video.thumbnail", bind=True)
def thumbnail(self: Task, *, job_id: str, name: str) -> dict[str, Any]:
    """Make a poster JPEG; the result is its manifest entry."""
    check_deliveries(self)
    try:
        return mp4.thumbnail(job_id, name, get_settings())
    except MediaError as exc:
        _fail_or_retry(self, exc)


@app.task(name="video.probe", bind=True)
def probe(self: Task, *, job_id: str, name: str) -> dict[str, Any]:
    """Probe an input: duration, streams, codecs, size, frame rate, rotation, bit rate."""
    check_deliveries(self)
    try:
        return steps.probe_input(name, get_settings())
    except MediaError as exc:
        _fail_or_retry(self, exc)


@app.task(name="video.fail_job")
def fail_job(request: Any, exc: BaseException, traceback: Any, *, job_id: str) -> None:
    """Errback of a job's steps: a step failed for good, so the job fails with its error.

    Celery calls it in the worker where the step failed, with the step's request and its
    exception, so the job result keeps the typed error (NotMedia, InputNotFound, ...).
    A chunk or rung of a fanned-out job fails the chord instead: Celery calls this with the
    chord body's request (id = job id) and a ChordError it stores under the job id itself;
    the audit gets the failed step's typed error, and :class:`Job` unwraps it the same way.
    """
    kwargs = request.kwargs or {}
    if isinstance(exc, ChordError):
        failed = Job(job_id, app=app).failed_step()
        exc = failed[1] if failed else exc
    elif request.id == job_id:
        return  # the job's own task failed: its state and events are already recorded
    else:
        # call_errbacks=False: this *is* the errback; calling it again would recurse.
        app.backend.mark_as_failure(job_id, exc, request=request, call_errbacks=False)
    publish_event(
        app,
        "job.finished",
        state="FAILURE",
        job_id=job_id,
        task_id=job_id,
        task=request.task,
        input=kwargs.get("name"),
        error=error_dict(exc),
    )
