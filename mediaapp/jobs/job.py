"""One job: its id, the ids of its steps, its keys in the result backend, and the Celery
workflow of each strategy (the only place chains and chords are built).

A transcode job is one ``video.transcode`` message (task id = job id): the step probes the
input (the job's one probe, kept in its context) and runs the job itself (*single*) or
replaces itself with a chord whose body inherits the job id, so the job's result is always
the manifest::

    per_rendition   video.rung (R of them) (<job>-rung<i>)    → video.package  (<job>)
    multi-codec     video.variants (per codec, <job>-<codec>[-rung<i>], on the codec's
                    capability queue)                           → video.package_variants (<job>)
    per-title       video.trial (one a sample) (<job>-trial<round>-<i>) → video.search (<job>),
                    which replaces itself with the next round, or encodes the ladder
    chunked         video.previews (<job>-previews, mp4 only),
                    video.chunk (N of them) (<job>-chunk<i>),
                    video.audio (<job>-audio)                   → video.assemble (<job>)

Every step's message carries ``job_id`` and ``name`` (the audit log, Flower, the dead letters
and the logs label it with them) and, after the probe, the job's context.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, NoReturn

from celery import Celery, Task, chord, group
from celery.result import AsyncResult

from mediaapp import defaults
from mediaapp.errors import InvalidInput, MediaError
from mediaapp.jobs import tenants
from mediaapp.jobs.routing import CAPABILITY_QUEUES, MEDIA_EXCHANGE, VIDEO_QUEUE, encode_key
from mediaapp.media import multicodec, pertitle, steps
from mediaapp.media.context import JobContext
from mediaapp.media.outputs import SAFE_JOB_ID
from mediaapp.media.profiles import get_profile
from mediaapp.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: Namespace for turning any producer's event id into a job id (same event → same job).
EVENT_NAMESPACE = uuid.UUID("5b1f3c3e-8f0e-4d5e-9a55-6d6564696170")
#: Seconds the job's keys live in the result backend (as long as its results).
KEY_TTL_S = 7 * 24 * 3600


def new_job_id() -> str:
    """A fresh job id."""
    return uuid.uuid4().hex


def check_job_id(job_id: Any) -> str:
    """``job_id`` if it is safe as a folder name and a key, else :class:`InvalidInput`."""
    if not isinstance(job_id, str) or not SAFE_JOB_ID.fullmatch(job_id):
        raise InvalidInput(f"job id {job_id!r} is not a safe name (A-Z a-z 0-9 _ -, 1-64)")
    return job_id


def check_priority(priority: Any) -> int:
    """``priority`` (0..MAX_PRIORITY; None → the default) as an int, else :class:`InvalidInput`."""
    if priority is None:
        return defaults.DEFAULT_PRIORITY
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidInput(
            f"priority {priority!r} is not a whole number 0..{defaults.MAX_PRIORITY}"
        )
    if not 0 <= priority <= defaults.MAX_PRIORITY:
        raise InvalidInput(f"priority {priority} is outside 0..{defaults.MAX_PRIORITY}")
    return priority


def job_id_for_event(event_id: Any, fallback: Any) -> str:
    """A stable job id for an outside event: the same event id always gives the same job."""
    raw = event_id if event_id not in (None, "") else fallback
    return str(uuid.uuid5(EVENT_NAMESPACE, str(raw)))


# Task ids of a job's steps: clients derive them to show progress and to cancel.


def rung_task_id(job_id: str, index: int) -> str:
    """Rung ``index`` of a per-rendition job."""
    return f"{job_id}-rung{index}"


def chunk_task_id(job_id: str, index: int, codec: str | None = None) -> str:
    """Chunk ``index`` of a chunked job (in ``codec``, for a multi-codec ladder)."""
    return f"{job_id}-chunk{index}" + (f"-{codec}" if codec else "")


def variant_task_id(job_id: str, codec: str, index: int | None = None) -> str:
    """The ``codec`` variants (of rung ``index``, per rendition) of a multi-codec job."""
    return f"{job_id}-{codec}" + (f"-rung{index}" if index is not None else "")


def trial_task_id(job_id: str, round_: int, sample: int) -> str:
    """Trials of sample ``sample`` in round ``round_`` of a per-title search."""
    return f"{job_id}-trial{round_}-{sample}"


def part_task_id(job_id: str, part: str) -> str:
    """The ``audio`` or ``previews`` step of a chunked job."""
    return f"{job_id}-{part}"


# Keys in the result backend. Bytes: the file backend joins keys onto a bytes path.


def steps_key(job_id: str) -> bytes:
    """The task ids of a fanned-out job's steps (JSON list)."""
    return f"mediaapp-steps-{job_id}".encode()


def cancel_key(job_id: str) -> bytes:
    """Set once the job is cancelled."""
    return f"mediaapp-cancel-{job_id}".encode()


def delivery_key(task_id: str, retries: int) -> str:
    """Deliveries of one attempt of one task message (the poison-message counter)."""
    return f"mediaapp:deliveries:{task_id}:{retries}"


def step_ids(app: Celery, job_id: str) -> list[str]:
    """The task ids of a fanned-out job's steps, as recorded when it fanned out."""
    raw = app.backend.get(steps_key(job_id))
    return list(json.loads(raw)) if raw else []


def failed_step(app: Celery, job_id: str) -> tuple[str, BaseException] | None:
    """(task id, typed error) of the first failed step of a fanned-out job (chunks, rungs):
    Celery records only a ChordError naming it under the job id."""
    for task_id in step_ids(app, job_id):
        result = app.AsyncResult(task_id)
        if result.state == "FAILURE" and isinstance(result.result, BaseException):
            return task_id, result.result
    return None


# Workflows.


def send(
    app: Celery,
    *,
    job_id: str,
    name: str,
    profile: str = "web",
    task: str = "video.transcode",
    priority: int | None = None,
    subtitles: list[dict[str, Any]] | None = None,
    tenant: str | None = None,
) -> AsyncResult:
    """Publish a job (routes and topology come from the app's ``task_routes``).

    Every job is one message whose task id is the job id: one dispatch, one result write
    (a probe step of its own cost a second of each: see bench overhead). A transcode carries
    ``video.fail_job`` as its errback, which the chord of a fanned-out job inherits and which
    records a failed chunk's or rung's typed error under the job id. Every step carries
    ``priority`` (0..9, 9 first); the steps a worker sends later (chords, retries) inherit it.
    A ``tenant``'s job goes out demoted by the tenant's backlog (fair share, tenants.py).
    """
    check_job_id(job_id)
    prio = check_priority(priority)
    labels: dict[str, Any] = {"job_id": job_id, "name": name}
    if tenant := tenants.check_tenant(tenant):
        labels["tenant"] = tenant
        prio = tenants.admit(app.backend, job_id, tenant, prio)
    if task != "video.transcode":
        return app.send_task(task, kwargs=labels, task_id=job_id, priority=prio)
    return app.send_task(
        task,
        kwargs={**labels, "profile": profile, **({"subtitles": subtitles} if subtitles else {})},
        task_id=job_id,
        priority=prio,
        **needs(_codec(profile), "transcode"),
        link_error=app.signature("video.fail_job", kwargs={"job_id": job_id}).set(priority=prio),
    )


def transcode(task: Task, ctx: JobContext, on_progress: steps.ProgressCallback) -> dict[str, Any]:
    """Run the job here (single), or replace ``task`` with the chord of its strategy."""
    settings = ctx.settings
    if pertitle.wanted(ctx.profile):  # trials in parallel on the workers, if more than one
        if video_workers(task.app, settings) < 2:
            return steps.transcode(ctx, on_progress)
        state = pertitle.new_state(pertitle.pick_samples(ctx), tasks=True)
        return per_title(task, ctx, state, 0, on_progress)
    multi = ctx.profile.cmaf
    if settings.ladder_strategy == "per_rendition" and ctx.profile.kind == "hls" and not multi:
        _replace(task, ctx, _rungs(task.app, ctx, steps.prepare_rungs(ctx)))
    workers = video_workers(task.app, settings) if settings.chunking != "never" else 1
    # With one worker "auto" never chunks: skip the plan on the common path.
    if settings.chunking == "always" or (settings.chunking == "auto" and workers > 1):
        plan = steps.chunk_plan(ctx, workers)
        log.info("job %s: chunked=%s (%s)", ctx.job_id, plan.chunked, plan.reason)
        if plan.chunked:
            chunks = steps.split(ctx, plan.chunk_s)
            _replace(task, ctx, _chunks(task.app, ctx, chunks, plan.to_dict()))
    if multi:  # each codec on the workers that proved it, in parallel
        parts = multicodec.prepare_variants(ctx, settings.ladder_strategy)
        _replace(task, ctx, _variants(task.app, ctx, parts))
    return steps.transcode(ctx, on_progress, settings.ladder_strategy)


def per_title(
    task: Task, ctx: JobContext, state: dict[str, Any], round_: int,
    on_progress: steps.ProgressCallback,
) -> dict[str, Any]:  # fmt: skip
    """Round ``round_`` of a per-title search: a chord of one ``video.trial`` task a sample,
    whose body (``video.search``) folds the results in and comes back here; once no rung has
    a CRF left to try, the ladder at the chosen CRFs, encoded in this step (single)."""
    probes = pertitle.next_probes(ctx, state)
    if probes:
        labels = _labels(ctx)
        header = [
            task.app.signature("video.trial", kwargs={**labels, "sample": s, "probes": probes}).set(
                task_id=trial_task_id(ctx.job_id, round_, i), **needs(ctx.profile.codec, "trial")
            )
            for i, s in enumerate(state["samples"])
        ]
        # The body encodes the ladder once the search is over: on a worker with its encoder.
        body = task.app.signature("video.search", kwargs={**labels, "state": state,
                                                          "round": round_}).set(
            **needs(ctx.profile.codec, "search"))  # fmt: skip
        _replace(task, ctx, (header, body))
    return steps.transcode(ctx, on_progress, search=state)


def _labels(ctx: JobContext) -> dict[str, Any]:
    return {"job_id": ctx.job_id, "name": ctx.name, "context": ctx.to_dict()}


def _codec(profile: str) -> str:
    """The codec a profile encodes; an unknown or broken profile is the worker's to refuse,
    typed and dead-lettered like any bad job (a producer's message is never lost here). A
    multi-codec ladder's first step only probes and fans out: any video worker takes it."""
    try:
        chosen = get_profile(profile, get_settings().profiles_dir)
        return "h264" if chosen.cmaf else chosen.codec
    except MediaError:
        return "h264"


def needs(codec: str, step: str) -> dict[str, str]:
    """Publish options of a step that encodes ``codec``: beyond H.264 (every transcoding
    worker's baseline, task_routes' video_queue), the codec's capability queue, which only the
    workers that proved the codec consume (capabilities.py). Steps that copy (packaging,
    assembly) or need no encoder go anywhere on video_queue."""
    if codec not in CAPABILITY_QUEUES:
        return {}
    return {"exchange": MEDIA_EXCHANGE.name, "routing_key": encode_key(codec, step)}


def _rungs(app: Celery, ctx: JobContext, indexes: list[int]) -> tuple[list[Any], Any]:
    header = [
        app.signature("video.rung", kwargs={**_labels(ctx), "index": i}).set(
            task_id=rung_task_id(ctx.job_id, i), **needs(ctx.profile.codec, "rung")
        )
        for i in indexes
    ]
    return header, app.signature("video.package", kwargs=_labels(ctx))


def _variants(app: Celery, ctx: JobContext, parts: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    header = [
        app.signature("video.variants", kwargs={**_labels(ctx), **part}).set(
            task_id=variant_task_id(ctx.job_id, part["codec"], part["index"]),
            **needs(part["codec"], "variants"),
        )
        for part in parts
    ]
    return header, app.signature("video.package_variants", kwargs=_labels(ctx))


def _chunks(
    app: Celery, ctx: JobContext, chunks: list[dict[str, Any]], plan: dict[str, Any]
) -> tuple[list[Any], Any]:
    # Longest first, so no long task starts last and stretches the job: the previews (a
    # decode of the whole source), then the chunks, then the audio (the quickest).
    labels = _labels(ctx)
    header = []
    if ctx.profile.kind == "mp4":
        header.append(
            app.signature("video.previews", kwargs=labels).set(
                task_id=part_task_id(ctx.job_id, "previews")
            )
        )
    # A multi-codec ladder's chunk is a step per codec, each on the codec's workers.
    codecs: tuple[str | None, ...] = (
        tuple(reversed(ctx.profile.codecs)) if ctx.profile.cmaf else (None,)
    )
    header += [
        app.signature(
            "video.chunk", kwargs={**labels, "chunk": c, **({"codec": k} if k else {})}
        ).set(
            task_id=chunk_task_id(ctx.job_id, c["index"], k),
            **needs(k or ctx.profile.codec, "chunk"),
        )
        for k in codecs
        for c in chunks
    ]
    header.append(
        app.signature("video.audio", kwargs=labels).set(task_id=part_task_id(ctx.job_id, "audio"))
    )
    return header, app.signature("video.assemble", kwargs={**labels, "plan": plan})


def _replace(task: Task, ctx: JobContext, workflow: tuple[list[Any], Any]) -> NoReturn:
    """Record the steps (clients show their progress), then become the chord: its body
    inherits this task's id, the job id."""
    header, body = workflow
    if tenant := (task.request.kwargs or {}).get("tenant"):  # every step carries the tenant
        for sig in (*header, body):
            sig.kwargs["tenant"] = tenant
    ids = [sig.id for sig in header]
    task.backend.set(steps_key(ctx.job_id), json.dumps(ids).encode())
    raise task.replace(chord(group(header), body))


def video_workers(app: Celery, settings: Settings) -> int:
    """Workers a chunked job can spread over: the setting, else video_queue's consumers."""
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
