"""``video.*`` tasks, routed to ``video_queue``: each one call into the media layer.

Retry, poison guard, cancel and progress live in :class:`~mediaapp.jobs.step.MediaStep`; the
workflows (chain, chords) and step ids in :mod:`mediaapp.jobs.job`. ``**job`` is what every
step's message carries: ``job_id``, ``name`` and, after the probe, the job's ``context``.
"""

from __future__ import annotations

from typing import Any

from celery.exceptions import ChordError

from mediaapp.jobs import job, tenants
from mediaapp.jobs.app import app
from mediaapp.jobs.events import error_dict, publish_event
from mediaapp.jobs.step import MediaStep
from mediaapp.media import multicodec, steps
from mediaapp.media.context import JobContext


@app.task(name="video.probe", base=MediaStep, bind=True)
def probe(self: MediaStep, *, job_id: str, name: str, tenant: str | None = None) -> dict[str, Any]:
    """Probe an input: duration, streams, codecs, size, frame rate, rotation, bit rate."""
    return steps.probe_input(name, self.settings)


@app.task(name="video.transcode", base=MediaStep, bind=True)
def transcode(
    self: MediaStep,
    *,
    job_id: str,
    name: str,
    profile: str = "web",
    subtitles: list[dict[str, Any]] | None = None,
    tenant: str | None = None,
) -> dict[str, Any]:
    """Probe the input and run a profile on it: the job's manifest, or a chord of its steps.
    ``subtitles``: sidecar files given with the job (checked in :meth:`JobContext.open`);
    ``tenant``: read by the step base class (fair share) and passed on to the chord's steps."""
    ctx = JobContext.open(job_id, name, profile, self.settings, subtitles)
    return job.transcode(self, ctx, self.progress("transcode"))


@app.task(name="video.thumbnail", base=MediaStep, bind=True)
def thumbnail(
    self: MediaStep, *, job_id: str, name: str, tenant: str | None = None
) -> dict[str, Any]:
    """Make a poster JPEG; the result is its manifest entry."""
    return steps.thumbnail(JobContext.open(job_id, name, "web", self.settings))


@app.task(name="video.rung", base=MediaStep, bind=True)
def rung(self: MediaStep, *, index: int, **job: Any) -> dict[str, Any]:
    """Encode one rung of a ladder (per-rendition strategy: rungs spread across workers)."""
    return steps.encode_rung(self.context(job), index, self.progress(f"rung {index}"))


@app.task(name="video.package", base=MediaStep, bind=True)
def package(self: MediaStep, rungs: list[dict[str, Any]], **job: Any) -> dict[str, Any]:
    """Package the rungs (master playlist, verification); the result is the job manifest."""
    return steps.package_rungs(self.context(job), rungs)


@app.task(name="video.variants", base=MediaStep, bind=True)
def variants(
    self: MediaStep, *, codec: str, index: int | None = None, **job: Any
) -> dict[str, Any]:
    """Encode one codec's variants of a multi-codec ladder (on a worker that proved it)."""
    step = codec if index is None else f"{codec} rung {index}"
    return multicodec.encode_variants(self.context(job), codec, index, self.progress(step))


@app.task(name="video.package_variants", base=MediaStep, bind=True)
def package_variants(self: MediaStep, parts: list[dict[str, Any]], **job: Any) -> dict[str, Any]:
    """Package a multi-codec ladder (HLS and DASH over CMAF); the result is the job manifest."""
    return multicodec.package_variants(self.context(job), parts)


@app.task(name="video.chunk", base=MediaStep, bind=True)
def encode_chunk(
    self: MediaStep, *, chunk: dict[str, Any], codec: str | None = None, **job: Any
) -> dict[str, Any]:
    """Encode one chunk of a chunked job into every rendition (of ``codec``, in a multi-codec
    ladder), or reuse it by content."""
    step = f"chunk {chunk['index']}" + (f" {codec}" if codec else "")
    return steps.encode_chunk(self.context(job), chunk, self.progress(step), codec)


@app.task(name="video.audio", base=MediaStep, bind=True)
def encode_audio(self: MediaStep, **job: Any) -> dict[str, Any]:
    """Encode a chunked job's audio track, once."""
    return steps.encode_audio(self.context(job), self.progress("audio"))


@app.task(name="video.previews", base=MediaStep, bind=True)
def previews(self: MediaStep, **job: Any) -> dict[str, Any]:
    """Poster, sprite sheet and WebVTT track of a chunked mp4 job."""
    return steps.previews(self.context(job))


@app.task(name="video.assemble", base=MediaStep, bind=True)
def assemble(
    self: MediaStep, parts: list[dict[str, Any]], *, plan: dict[str, Any], **job: Any
) -> dict[str, Any]:
    """Join the chunks, add the audio, package and verify; the result is the job manifest."""
    return steps.assemble(self.context(job), parts, plan)


@app.task(name="video.fail_job")
def fail_job(request: Any, exc: BaseException, traceback: Any, *, job_id: str) -> None:
    """Errback of a job's steps: a step failed for good, so the job fails with its error.

    Celery calls it in the worker where the step failed, with the step's request and its
    exception, so the job result keeps the typed error (NotMedia, InputNotFound, ...).
    A chunk or rung of a fanned-out job fails the chord instead: Celery calls this with the
    chord body's request (id = job id) and a ChordError it stores under the job id itself;
    the audit gets the failed step's typed error, and the client unwraps it the same way.
    """
    if isinstance(exc, ChordError):
        failed = job.failed_step(app, job_id)
        exc = failed[1] if failed else exc
    elif request.id == job_id:
        return  # the job's own task failed: its state and events are already recorded
    else:
        # call_errbacks=False: this *is* the errback; calling it again would recurse.
        app.backend.mark_as_failure(job_id, exc, request=request, call_errbacks=False)
    tenant = (request.kwargs or {}).get("tenant")
    tenants.release(app.backend, job_id, tenant)  # the job is over: out of its tenant's backlog
    publish_event(
        app,
        "job.finished",
        state="FAILURE",
        job_id=job_id,
        task_id=job_id,
        task=request.task,
        input=(request.kwargs or {}).get("name"),
        tenant=tenant,
        error=error_dict(exc),
    )
