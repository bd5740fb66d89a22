"""A video worker's encoder capabilities: detected at start-up, consumed as queues, published.

Two Celery signals, both in the worker's main process:

* ``celeryd_after_setup`` (after ``-Q`` is applied, before the consumer starts): a worker that
  consumes ``video_queue`` proves its encoders (mediaapp/media/encoders.py), narrowed by
  ``MEDIAAPP_CAPABILITIES``, and adds the capability queue of each codec it proved to the
  queues it consumes (``app.amqp.queues.select_add``: the same set ``-Q`` filled, so the
  consumer starts on all of them at once; nothing is consumed before the test encodes ran).
* ``worker_ready``: publishes the audited ``worker.capabilities`` event (routing key
  ``event.worker.capabilities``, so it reaches the audit queue only).

The remote-control command ``capabilities`` answers what a running worker found
(``mediaapp workers`` asks every worker), less the hardware encoders it disabled after a
fault (mediaapp/jobs/fallback.py), listed under ``disabled`` with the reason. Those live in
the result backend (``mediaapp-disabled-<worker>``): the pool's processes see the faults, the
main process answers; cleared when the worker starts (it proves its encoders again).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import signals
from celery.worker.control import inspect_command

from mediaapp.jobs import routing
from mediaapp.jobs.events import publish_event
from mediaapp.media import command, encoders
from mediaapp.settings import get_settings

log = logging.getLogger(__name__)

#: What this worker process found: the event's fields, once detected.
_found: dict[str, Any] = {}


def consumed_queues(app: Any) -> list[str]:
    """Names of the queues this worker consumes (``-Q``, or every task queue without it)."""
    return sorted(app.amqp.queues.consume_from)


def on_after_setup(sender: str | None = None, instance: Any = None, **_: Any) -> None:
    """Detect, then consume the capability queues of the proven codecs (video workers only)."""
    app = instance.app
    if routing.VIDEO_QUEUE.name not in consumed_queues(app):
        return  # not a transcoding worker: it encodes nothing, it needs no capability
    settings = get_settings()
    caps = encoders.detect(command.Limits.from_settings(settings), settings.claimed_capabilities)
    for codec in caps.codecs:
        queue = routing.CAPABILITY_QUEUES.get(codec)  # h264 is video_queue's own
        if queue is not None:
            app.amqp.queues.select_add(queue)
    _found.clear()
    _found.update(caps.to_dict(), worker=sender, queues=consumed_queues(app), disabled={})
    try:  # a new life: nothing disabled (a restarted worker proved its encoders again)
        app.backend.delete(disabled_key(str(sender)))
    except Exception:
        log.warning("could not clear the disabled encoders of %s", sender, exc_info=True)
    log.info(
        "capabilities: %s (refused: %s); consuming %s",
        ", ".join(caps.codecs) or "none",
        ", ".join(sorted(caps.refused())) or "none",
        ", ".join(_found["queues"]),
    )


def on_ready(sender: Any = None, **_: Any) -> None:
    """Publish what this worker proved and which queues it consumes (audited)."""
    if _found:
        publish_event(sender.app, "worker.capabilities", **_found)


@inspect_command()
def capabilities(state: Any) -> dict[str, Any]:
    """Remote control: this worker's capabilities (empty for a worker without video_queue)."""
    if not _found:
        return {}
    app, off = getattr(getattr(state, "consumer", None), "app", None), {}
    try:
        off = disabled(app, str(_found["worker"])) if app is not None else {}
    except Exception:  # the backend is down: say what was proven, and that this is unknown
        log.warning("could not read the disabled encoders", exc_info=True)
        return {**_found, "disabled": None}
    return without(_found, off)


def found() -> dict[str, Any]:
    """What this worker proved at start-up (inherited by its pool processes); {} elsewhere."""
    return _found


def disabled_key(worker: str) -> bytes:
    """The result-backend key of the encoders ``worker`` disabled (JSON encoder → reason)."""
    return f"mediaapp-disabled-{worker}".encode()


def disabled(app: Any, worker: str) -> dict[str, str]:
    """Encoder → reason, for each hardware encoder ``worker`` disabled after a fault."""
    raw = app.backend.get(disabled_key(worker))
    return dict(json.loads(raw)) if raw else {}


def without(caps: dict[str, Any], off: dict[str, str]) -> dict[str, Any]:
    """``caps`` less the ``off`` encoders, which are listed under ``disabled`` instead."""
    encoders = {
        codec: {kind: [e for e in names if e not in off] for kind, names in kinds.items()}
        for codec, kinds in caps.get("encoders", {}).items()
    }
    return {**caps, "encoders": encoders, "disabled": dict(off)}


_connected = False


def connect_signals() -> None:
    """Hook the start-up handlers in (once per process)."""
    global _connected
    if _connected:
        return
    signals.celeryd_after_setup.connect(on_after_setup, weak=False)
    signals.worker_ready.connect(on_ready, weak=False)
    _connected = True
