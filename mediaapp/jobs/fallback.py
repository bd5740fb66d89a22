"""A hardware encoder's fault at run time: the worker stops using it, the step runs again in
software.

Each step picks its encoders from what its worker proved (:func:`substitutes`): per codec a
hardware one (NVENC, QSV) when ``MEDIAAPP_PREFER_HARDWARE`` (the default) and not disabled,
else the software one; :mod:`mediaapp.media.hardware` swaps it into the step's commands.
When a command fails as hardware does (:class:`~mediaapp.errors.EncoderFault`), the step
(:meth:`MediaStep.__call__`) calls :func:`fall_back`: the worker disables that encoder for
the rest of its life (every pool process; audited ``worker.capability.disabled``), and the
step is retried at once on the codec's own route, so any worker that has the codec may take
it, with the software encoder of that codec (the fallback record is kept in the result
backend under the step's task id; the re-run reads it and puts it in its result, the
manifest's ``fallback``). A non-hardware failure disables nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from celery import Task

from mediaapp import defaults
from mediaapp.errors import EncoderFault
from mediaapp.jobs import capabilities
from mediaapp.jobs.events import publish_event
from mediaapp.media import hardware
from mediaapp.settings import Settings

log = logging.getLogger(__name__)

#: Steps that always encode in software: the chunks of one rendition are joined by copy, so
#: they must come from one encoder (a GPU worker and a CPU worker share chunked jobs).
SOFTWARE_STEPS = frozenset({"video.chunk"})

#: What this process disabled itself (the backend's record is the worker's; both count).
_disabled: dict[str, str] = {}


def codec_of(encoder: str) -> str | None:
    """The codec an encoder of CAPABILITY_ENCODERS makes (``h264`` for ``h264_nvenc``)."""
    return next((c for c, names in defaults.CAPABILITY_ENCODERS.items() if encoder in names), None)


def fallback_key(task_id: str) -> bytes:
    """The result-backend key of the fallback records of a step being re-run."""
    return f"mediaapp-fallback-{task_id}".encode()


def substitutes(
    found: dict[str, Any], settings: Settings, off: dict[str, str], software_only: set[str]
) -> dict[str, str]:
    """Software encoder → the hardware encoder to run instead, per codec this worker proved
    hardware for (not disabled, not forced to software by a fallback)."""
    if not settings.prefer_hardware:
        return {}
    chosen = {}
    for codec, kinds in (found.get("encoders") or {}).items():
        usable = [e for e in kinds.get("hardware", ())
                  if e not in off and hardware.family(e) in hardware.SUBSTITUTABLE]  # fmt: skip
        if usable and codec not in software_only and codec in defaults.CAPABILITY_ENCODERS:
            chosen[defaults.CAPABILITY_ENCODERS[codec][0]] = usable[0]
    return chosen


def _worker(task: Task) -> str:
    return str(task.request.hostname or capabilities.found().get("worker") or "")


def _records(task: Task) -> list[dict[str, Any]]:
    """The fallbacks that led to this run (only a retried step has any)."""
    if not task.request.retries or not task.request.id:
        return []
    raw = task.backend.get(fallback_key(task.request.id))
    return list(json.loads(raw)) if raw else []


@contextmanager
def encoding(task: Task, settings: Settings) -> Iterator[None]:
    """Run a step with its worker's encoder choice (and its fallbacks, if re-run)."""
    found, records = capabilities.found(), _records(task)
    forced = {c for r in records if (c := codec_of(r["from"]))}
    hardware_ok = found and task.name not in SOFTWARE_STEPS
    chosen = substitutes(found, settings, {}, forced) if hardware_ok else {}
    if chosen:  # only a worker with hardware pays for the look-up
        off = {**capabilities.disabled(task.app, _worker(task)), **_disabled}
        chosen = substitutes(found, settings, off, forced)
    with hardware.choosing(chosen, records):
        yield


def fall_back(task: Task, exc: EncoderFault) -> NoReturn:
    """Disable the failed encoder on this worker, then run the step again in software."""
    codec = codec_of(exc.encoder)
    if codec is None:
        raise exc
    worker, request = _worker(task), task.request
    job_id = (request.kwargs or {}).get("job_id")
    _disabled[exc.encoder] = exc.reason
    try:
        off = {**capabilities.disabled(task.app, worker), exc.encoder: exc.reason}
        task.backend.set(capabilities.disabled_key(worker), json.dumps(off).encode())
    except Exception:  # this process stops using it anyway
        log.warning("could not record %s as disabled for %s", exc.encoder, worker, exc_info=True)
    log.warning("%s: hardware encoder %s disabled (%s); %s runs again in software",
                worker, exc.encoder, exc.reason, request.id)  # fmt: skip
    publish_event(task.app, "worker.capability.disabled", worker=worker, encoder=exc.encoder,
                  codec=codec, reason=exc.reason, job_id=job_id, task_id=request.id,
                  task=task.name)  # fmt: skip
    record = {"from": exc.encoder, "to": defaults.CAPABILITY_ENCODERS[codec][0],
              "reason": exc.reason, "worker": worker, "step": task.name}  # fmt: skip
    try:
        records = [*_records(task), record]
        task.backend.set(fallback_key(str(request.id)), json.dumps(records).encode())
    except Exception:  # the re-run here is in software anyway; elsewhere it may try hardware
        log.warning("could not record the fallback of %s", request.id, exc_info=True)
    # At once, on the route it came by (the codec's): one more run, whatever max_retries says.
    raise task.retry(exc=exc, countdown=0, max_retries=request.retries + 1)
