"""Lifecycle events, published to ``media_exchange`` under ``event.*`` routing keys.

Why not Celery's own event stream: it goes to a separate exchange (``celeryev``) that the
audit queue would have to bind too, and it costs far more per task (a message per state for
every task, plus worker heartbeats). These events are small JSON documents that only the
audit queue's ``#`` binding matches: no task queue binds ``event.#``, so an event can never
be executed. The event contract is documented in the README.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from celery import Celery, signals
from kombu import Producer

from mediaapp.errors import MediaError
from mediaapp.jobs import routing
from mediaapp.jobs.confirms import confirmed_channel
from mediaapp.limits import bounded

log = logging.getLogger(__name__)
_HOST = socket.gethostname()

#: Name of a message carrying several events (``events``: their bodies, in order); the audit
#: log has one line per event in it, never one for the bundle.
BUNDLE = "events.bundle"

#: Publisher retry policy: a broker hiccup delays an event a little instead of losing it.
RETRY_POLICY = {"max_retries": 5, "interval_start": 0.1, "interval_step": 0.5, "interval_max": 2}


def build_event(name: str, **fields: Any) -> dict[str, Any]:
    """The JSON body of one event: its name, a timestamp, who sent it, and the fields."""
    # Bounded: a field quoting an outside input (a 10 MiB file name) is cut to a prefix.
    return {"event": name, "ts": time.time(), "hostname": _HOST, "pid": os.getpid(),
            **bounded(fields)}  # fmt: skip


def _publish(producer: Producer, body: dict[str, Any], message_id: str, **options: Any) -> None:
    producer.publish(
        body,
        exchange=routing.MEDIA_EXCHANGE,
        routing_key=routing.event_key(body["event"]),
        serializer="json",
        delivery_mode=2,
        message_id=message_id,
        **options,
    )


def _publish_confirmed(app: Celery, body: dict[str, Any], message_id: str) -> None:
    """Publish and wait for the broker's confirm; never raises (logs a lost event loudly)."""
    try:
        with app.producer_or_acquire() as producer:
            _publish(
                producer,
                body,
                message_id,
                declare=list(routing.TOPOLOGY),
                retry=True,
                retry_policy=RETRY_POLICY,
            )
    except Exception:  # the event is lost, the task is not: log loudly and move on
        log.exception("could not publish event %s", body["event"])


class _Outbox:
    """A worker process's events of the running task: sent at once, confirmed together.

    Waiting for a confirm per event cost a broker round trip each, twice a task. The events
    now go out as they happen (a crash in mid-task still leaves ``task.started`` in the
    audit log) and :func:`flush_events` waits once for all their confirms before the task
    returns, that is before its message is acked (``acks_late``).
    """

    def __init__(self, app: Celery) -> None:
        self.pid = os.getpid()
        self.connection, self.channel, self.confirms = confirmed_channel(app, routing.TOPOLOGY)
        self.producer = Producer(self.channel)
        #: (body, message id) of every event not yet confirmed, to publish again if need be.
        self.pending: list[tuple[dict[str, Any], str]] = []

    def send(self, body: dict[str, Any], message_id: str) -> None:
        self.pending.append((body, message_id))
        _publish(self.producer, body, message_id)

    def flush(self) -> None:
        self.confirms.wait()
        self.pending.clear()

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:  # already broken: that is why it is being closed
            log.debug("closing the event outbox", exc_info=True)


#: This thread's outbox and task depth (prerun → postrun): a pool of threads gets one each.
_local = threading.local()


def _current_outbox() -> _Outbox | None:
    outbox: _Outbox | None = getattr(_local, "outbox", None)
    return outbox if outbox is not None and outbox.pid == os.getpid() else None


def _outbox_for(app: Celery) -> _Outbox | None:
    """This thread's outbox (a new one after a fork); None where the broker has no confirms."""
    outbox = _current_outbox()
    if outbox is None and app.conf.broker_transport_options.get("confirm_publish"):
        outbox = _local.outbox = _Outbox(app)
    return outbox  # None on the embedded broker: nothing to pipeline there


def _discard_outbox(app: Celery) -> None:
    """Drop a broken outbox and publish its unconfirmed events again, one confirm each."""
    outbox = _current_outbox()
    _local.outbox = None
    if outbox is None:
        return
    outbox.close()
    for body, message_id in outbox.pending:  # a copy that did arrive is flagged duplicate
        _publish_confirmed(app, body, message_id)


def publish_event(app: Celery, name: str, **fields: Any) -> None:
    """Publish one lifecycle event; never raises (an event must not fail the work it reports).

    Inside a task the event is confirmed by :func:`flush_events` when the task ends; anywhere
    else (the worker's consumer, clients) it is confirmed before this returns. Inside a short
    task it is held and goes out with the task's other events in one message when it ends.
    """
    body = build_event(name, **fields)
    held: list[dict[str, Any]] | None = getattr(_local, "held", None)
    depth: int = getattr(_local, "task_depth", 0)
    if held is not None and depth:
        held.append(body)
        return
    _send(app, body)


def bundle(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Several events in one message (a short task's): one publish, one confirm, one delivery."""
    if len(bodies) == 1:
        return bodies[0]
    # Each body is bounded already: bounding the bundle again would only cost time.
    return {"event": BUNDLE, "ts": time.time(), "hostname": _HOST, "pid": os.getpid(),
            "events": bodies}  # fmt: skip


def unbundle(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The events one message carries: itself, or each event of a bundle."""
    parts = doc.get("events") if doc.get("event") == BUNDLE else None
    if not isinstance(parts, list):
        return [doc]
    return [part if isinstance(part, dict) else {"body": part} for part in parts]


def _send(app: Celery, body: dict[str, Any]) -> None:
    """Publish through this task's outbox (confirmed at its end), or with a confirm of its own."""
    message_id, name = uuid.uuid4().hex, body["event"]
    if getattr(_local, "task_depth", 0):
        try:
            outbox = _outbox_for(app)
        except Exception:
            log.warning("no event outbox, publishing %s with its own confirm", name, exc_info=True)
            outbox = None
        if outbox is not None:
            try:
                outbox.send(body, message_id)
            except Exception:  # this event is pending: publishing the pending ones covers it
                log.warning("event outbox failed at %s, publishing again", name, exc_info=True)
                _discard_outbox(app)
            return
    _publish_confirmed(app, body, message_id)


def flush_events(app: Celery) -> None:
    """Return once the broker confirmed every event this thread sent; never raises."""
    outbox = _current_outbox()
    if outbox is None or not outbox.pending:
        return
    try:
        outbox.flush()
    except Exception:
        log.warning("event confirms failed, publishing %d again", len(outbox.pending))
        _discard_outbox(app)


def error_dict(exc: BaseException | None) -> dict[str, Any] | None:
    """An exception as a JSON-ready dict (typed for MediaError, generic otherwise)."""
    if exc is None:
        return None
    if isinstance(exc, MediaError):
        return exc.to_dict()
    return {"type": type(exc).__name__, "code": "internal", "message": str(exc)}


def lifecycle_fields(
    name: str | None,
    task_id: str | None,
    kwargs: dict[str, Any],
    retries: int,
    delivery_info: dict[str, Any] | None,
) -> dict[str, Any]:
    """The fields every task.* lifecycle event carries, from a task's message."""
    return {
        "task": name,
        "task_id": task_id,
        "job_id": kwargs.get("job_id"),
        "input": kwargs.get("name"),
        "tenant": kwargs.get("tenant"),
        "retries": retries,
        # A redelivered attempt (after a worker crash) is visible as such in the audit log.
        "redelivered": bool((delivery_info or {}).get("redelivered")),
    }


def _task_fields(task: Any, task_id: str | None, kwargs: dict[str, Any] | None) -> dict[str, Any]:
    request = getattr(task, "request", None)
    given = {k: v for k, v in (kwargs or {}).items() if v}  # the request's where these are empty
    return lifecycle_fields(
        getattr(task, "name", None),
        task_id or getattr(request, "id", None),
        {**(getattr(request, "kwargs", None) or {}), **given},
        getattr(request, "retries", 0),
        getattr(request, "delivery_info", None),
    )


def _is_job_root(fields: dict[str, Any]) -> bool:
    return fields["job_id"] is not None and fields["job_id"] == fields["task_id"]


def _on_prerun(
    sender: Any = None, task_id: str | None = None, kwargs: Any = None, **_: Any
) -> None:
    sender.request._mediaapp_started = time.monotonic()
    _local.task_depth = getattr(_local, "task_depth", 0) + 1
    fields = _task_fields(sender, task_id, kwargs)
    if _local.task_depth == 1 and getattr(sender, "short", False):
        # A short task (``short=True``): its events wait for its end and go in one message. A
        # crash before then leaves no task.started of that attempt; the redelivered attempt's
        # events say ``redelivered``. Where the main process batches them (_short_by_main),
        # task.started is written here only if the task does not succeed.
        _local.held = []
        if _short_by_main:
            _local.started = (fields, time.time())
            return
    publish_event(sender.app, "task.started", **fields)


#: Set (before the pool forks) when the worker's main process publishes the events of short
#: tasks that succeeded, batched (mediaapp.jobs.eventbatch): a pool process then drops them.
_short_by_main = False


def leave_short_tasks_to_main(enabled: bool) -> None:
    """Let the main process publish a succeeded short task's started and succeeded events."""
    global _short_by_main
    _short_by_main = enabled


def _on_postrun(sender: Any = None, state: Any = None, **_: Any) -> None:
    # Before the task returns, so before acks_late acks its message: an acked task's events
    # are confirmed by the broker, on the durable audit queue.
    held = getattr(_local, "held", None)
    if held is not None and getattr(_local, "task_depth", 0) == 1:
        _local.held = None
        started, _local.started = getattr(_local, "started", None), None
        if started is not None and state != "SUCCESS":  # else the main process writes it
            held.insert(0, build_event("task.started", **started[0]) | {"ts": started[1]})
        if held:
            _send(sender.app, bundle(held))
    flush_events(sender.app)
    _local.task_depth = max(getattr(_local, "task_depth", 0) - 1, 0)


def _runtime(task: Any) -> float | None:
    started = getattr(task.request, "_mediaapp_started", None)
    return round(time.monotonic() - started, 3) if started else None


def result_summary(result: Any) -> dict[str, Any]:
    """Figures of a manifest worth an event (metrics read them from the audit stream)."""
    if not isinstance(result, dict) or "outputs" not in result:
        return {}
    source = result.get("source") or {}
    encode_s = result.get("encode_s") or 0
    duration = source.get("duration_s") or 0
    vmaf = [o["quality"]["vmaf_mean"] for o in result["outputs"] if o.get("quality")]
    return {
        "bytes_in": source.get("size"),
        "bytes_out": sum(int(o.get("size") or 0) for o in result["outputs"]),
        "media_duration_s": duration,
        "encode_s": encode_s,
        "speed": round(duration / encode_s, 3) if encode_s and duration else None,
    } | ({"vmaf_means": vmaf} if vmaf else {})  # one per rendition scored


def _on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    if getattr(_local, "started", None) is not None and not _is_job_root(_local.started[0]):
        return  # a short task whose events the main process writes (see _on_prerun)
    fields = _task_fields(sender, None, None)
    fields["runtime_s"] = _runtime(sender)
    fields.update(result_summary(result))
    publish_event(sender.app, "task.succeeded", **fields)
    if _is_job_root(fields):
        publish_event(sender.app, "job.finished", state="SUCCESS", **fields)


def _on_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: Any = None,
    kwargs: Any = None,
    **_: Any,
) -> None:
    fields = _task_fields(sender, task_id, kwargs)
    fields["runtime_s"] = _runtime(sender)
    fields["error"] = error_dict(exception)
    publish_event(sender.app, "task.failed", **fields)
    if _is_job_root(fields):  # other steps' failures end the job through video.fail_job
        publish_event(sender.app, "job.finished", state="FAILURE", **fields)


def _on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    fields = {
        "task": getattr(sender, "name", None),
        "task_id": getattr(request, "id", None),
        "job_id": (getattr(request, "kwargs", None) or {}).get("job_id"),
        "tenant": (getattr(request, "kwargs", None) or {}).get("tenant"),
        "retries": getattr(request, "retries", 0),
        "reason": str(reason),
        "error": error_dict(reason if isinstance(reason, BaseException) else None),
    }
    publish_event(sender.app, "task.retried", **fields)


def _on_revoked(sender: Any = None, request: Any = None, terminated: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is None:
        return
    publish_event(
        app,
        "task.revoked",
        task=getattr(sender, "name", None),
        task_id=getattr(request, "id", None),
        job_id=(getattr(request, "kwargs", None) or {}).get("job_id"),
        tenant=(getattr(request, "kwargs", None) or {}).get("tenant"),
        terminated=bool(terminated),
    )


def _set_message_id(headers: Any = None, properties: Any = None, **_: Any) -> None:
    # Every task message gets its own id, so the audit log can tell a redelivered copy of
    # one message from a new message (a retry) about the same task.
    if properties is not None and not properties.get("message_id"):
        properties["message_id"] = uuid.uuid4().hex


_connected = False


def connect_signals(lifecycle: bool = True) -> None:
    """Hook the handlers into Celery's signals (once per process); without ``lifecycle`` only
    the message ids the audit mirror needs, no lifecycle event."""
    global _connected
    if _connected:
        return
    _connected = True
    signals.before_task_publish.connect(_set_message_id, weak=False)
    if not lifecycle:
        return
    signals.task_prerun.connect(_on_prerun, weak=False)
    signals.task_postrun.connect(_on_postrun, weak=False)
    signals.task_success.connect(_on_success, weak=False)
    signals.task_failure.connect(_on_failure, weak=False)
    signals.task_retry.connect(_on_retry, weak=False)
    signals.task_revoked.connect(_on_revoked, weak=False)
