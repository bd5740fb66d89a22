"""The worker's message consumer: Celery's own, plus ``video.upload`` events from outside producers.

A plain Kombu producer that knows nothing of Celery publishes ``{"file": ..., "id": ...}``
with routing key ``video.upload``. The ``video.#`` binding puts it in ``video_queue``, where a
stock Celery worker would log "unknown message" and drop it. Here it becomes a transcode job:
the job message is published first and the event acked after, so a crash in between gives a
redelivered event that maps to the same job id (at-least-once, and the job id makes it
idempotent).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.worker.consumer import Consumer
from kombu.message import Message

from mediaapp import defaults
from mediaapp.errors import InvalidInput
from mediaapp.jobs import claims, eventbatch, job, routing, tenants
from mediaapp.jobs.events import error_dict, publish_event
from mediaapp.jobs.outage import BACKEND_ERRORS
from mediaapp.limits import quote
from mediaapp.settings import get_settings

log = logging.getLogger(__name__)


def upload_to_job(body: Any, raw_size: int = 0) -> dict[str, Any]:
    """Validate an upload event body; return the job it asks for, or raise InvalidInput.

    Every field is bounded, and so is the raw body: nothing an outside producer sends can
    make us publish, store or audit more than a bounded prefix of it.
    """
    if raw_size > defaults.MAX_EVENT_BYTES:
        raise InvalidInput(
            f"upload event body is {raw_size} bytes, over the limit {defaults.MAX_EVENT_BYTES}"
        )
    if not isinstance(body, dict):
        raise InvalidInput(f"upload event body must be a JSON object, got {type(body).__name__}")
    name = body.get("file")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("upload event has no 'file' field")
    if len(name.encode("utf-8", "surrogatepass")) > defaults.MAX_NAME_BYTES:
        raise InvalidInput(
            f"upload event 'file' is {len(name)} characters, over the limit "
            f"{defaults.MAX_NAME_BYTES} bytes: {quote(name)}"
        )
    profile = body.get("profile", "web")
    if not isinstance(profile, str) or len(profile) > defaults.MAX_PROFILE_CHARS:
        raise InvalidInput(f"upload event 'profile' must be a short string: {quote(profile)}")
    event_id = body.get("id")
    if event_id is not None and (
        not isinstance(event_id, str | int) or len(str(event_id)) > defaults.MAX_ID_CHARS
    ):
        raise InvalidInput(
            f"upload event 'id' must be a string or number of at most "
            f"{defaults.MAX_ID_CHARS} characters: {quote(event_id)}"
        )
    priority = body.get("priority")
    if priority is not None:
        try:
            job.check_priority(priority)
        except InvalidInput as exc:
            raise InvalidInput(f"upload event 'priority': {exc}: {quote(priority)}") from None
    try:
        tenant = tenants.check_tenant(body.get("tenant"))
    except InvalidInput as exc:
        raise InvalidInput(f"upload event 'tenant': {exc}") from None
    return {"name": name, "profile": profile, "event_id": event_id, "priority": priority,
            "tenant": tenant}  # fmt: skip


class UploadConsumer(Consumer):
    """Celery's consumer, which also understands ``video.upload`` events, and batches the
    lifecycle events of short tasks (:mod:`mediaapp.jobs.eventbatch`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lifecycle_batch = eventbatch.start(self.app, self, get_settings())

    def on_close(self) -> None:
        """The connection is gone, and with it the delivery tags of the held acks."""
        if self.lifecycle_batch is not None:
            self.lifecycle_batch.discard()
        super().on_close()

    def stop(self) -> None:
        # A warm shutdown: publish the held events and ack their tasks before the connection
        # closes (Celery closes it in stop; the event loop has stopped turning already).
        if self.lifecycle_batch is not None:
            self.lifecycle_batch.close()
        super().stop()

    def shutdown(self) -> None:
        if self.lifecycle_batch is not None:
            self.lifecycle_batch.close()
        super().shutdown()

    def connection_for_write(self, url: str | None = None, heartbeat: float | None = None) -> Any:
        """The connection of Celery's monitoring events (its only user), without confirms.

        Task events for Flower are transient messages to a non-durable exchange: a publisher
        confirm protects nothing there, and each one held up the worker's event loop for a
        broker round trip (half of its time in the dispatch benchmark).
        """
        connection = self.app.connection_for_write(
            url=url, heartbeat=heartbeat, transport_options={"confirm_publish": False}
        )
        return self.ensure_connected(connection)

    def on_send_event_buffered(self) -> None:
        """Flush buffered task events after ``TASK_EVENTS_FLUSH_S``, not at once.

        Celery flushes after every buffered event: at a thousand short tasks a second that is
        three messages a task. Flower sees them a moment later, several tasks to a message.
        """
        if self.hub and not getattr(self, "_events_flush_due", False):
            self._events_flush_due = True
            self.hub.call_later(defaults.TASK_EVENTS_FLUSH_S, self._flush_events_later)

    def _flush_events_later(self) -> None:
        self._events_flush_due = False
        self._flush_events()

    def on_unknown_message(self, body: Any, message: Message) -> None:
        """Turn an upload event into a job; refuse (and audit) anything else."""
        routing_key = message.delivery_info.get("routing_key")
        if routing_key != routing.UPLOAD_EVENT:
            publish_event(
                self.app,
                "message.rejected",
                routing_key=routing_key,
                reason="not a task message and not a known event",
            )
            super().on_unknown_message(body, message)
            return
        raw = message.body if isinstance(message.body, bytes | str) else b""
        try:
            upload = upload_to_job(body, len(raw))
        except InvalidInput as exc:
            publish_event(
                self.app, "upload.rejected", routing_key=routing_key, error=error_dict(exc)
            )
            message.ack()
            return
        job_id = job.job_id_for_event(upload["event_id"], message.delivery_tag)
        self.dispatch_upload(upload, job_id, message)

    def dispatch_upload(self, upload: dict[str, Any], job_id: str, message: Message) -> None:
        """Claim the job id, publish the job, ack: a second copy of the event is a duplicate."""
        redelivered = bool(message.delivery_info.get("redelivered"))
        try:
            first = claims.claim(self.app.backend, job_id, redelivered=redelivered)
        except BACKEND_ERRORS as exc:  # no claim without the backend: try again shortly
            log.warning("upload %s: result backend unreachable (%s), requeued", job_id, exc)
            time.sleep(1)
            message.requeue()
            return
        fields = {"job_id": job_id, "input": upload["name"], "event_id": upload["event_id"],
                  "tenant": upload.get("tenant")}  # fmt: skip
        if not first:
            publish_event(self.app, "upload.duplicate", redelivered=redelivered, **fields)
            message.ack()
            log.info("upload event %s: duplicate of job %s, acked", upload["event_id"], job_id)
            return
        job.send(
            self.app,
            job_id=job_id,
            name=upload["name"],
            profile=upload["profile"],
            priority=upload["priority"],
            tenant=upload.get("tenant"),
        )
        claims.mark_sent(self.app.backend, job_id)
        publish_event(self.app, "upload.accepted", **fields)
        message.ack()
        log.info("upload event %s → job %s (%s)", upload["event_id"], job_id, quote(upload["name"]))
