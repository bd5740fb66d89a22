"""The worker's message consumer: Celery's own, plus the event contract for outside producers.

A plain Kombu producer that knows nothing of Celery publishes ``{"file": ..., "id": ...}``
with routing key ``video.upload``. The ``video.#`` binding puts it in ``video_queue``, where a
stock Celery worker would log "unknown message" and drop it. Here it becomes a transcode job:
the job message is published first and the event acked after, so a crash in between gives a
redelivered event that maps to the same job id (at-least-once, and the job id makes it
idempotent).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery.worker.consumer import Consumer
from kombu.message import Message

from mediaapp import defaults
from mediaapp.errors import InvalidInput
from mediaapp.jobs import routing
from mediaapp.jobs.client import send_job
from mediaapp.jobs.events import error_dict, publish_event

log = logging.getLogger(__name__)

#: Namespace for turning any producer's event id into a job id (same event → same job).
_EVENT_NAMESPACE = uuid.UUID("5b1f3c3e-8f0e-4d5e-9a55-6d6564696170")


def job_id_for_event(event_id: Any, message: Message) -> str:
    """A stable, file-system-safe job id for an upload event."""
    raw = str(event_id) if event_id not in (None, "") else message.delivery_tag
    return str(uuid.uuid5(_EVENT_NAMESPACE, str(raw)))


def upload_to_job(body: Any) -> dict[str, Any]:
    """Validate an upload event body; return the job it asks for, or raise InvalidInput."""
    if not isinstance(body, dict):
        raise InvalidInput(f"upload event body must be a JSON object, got {type(body).__name__}")
    name = body.get("file")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("upload event has no 'file' field")
    profile = body.get("profile", "web")
    if not isinstance(profile, str):
        raise InvalidInput("upload event 'profile' must be a string")
    return {"name": name, "profile": profile, "event_id": body.get("id")}


class UploadConsumer(Consumer):
    """Celery's consumer, which also understands ``video.upload`` events."""

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
        try:
            job = upload_to_job(body)
        except InvalidInput as exc:
            publish_event(
                self.app, "upload.rejected", routing_key=routing_key, error=error_dict(exc)
            )
            message.ack()
            return
        job_id = job_id_for_event(job["event_id"], message)
        send_job(self.app, job_id=job_id, name=job["name"], profile=job["profile"])
        publish_event(
            self.app, "upload.accepted", job_id=job_id, input=job["name"], event_id=job["event_id"]
        )
        message.ack()
        log.info("upload event %s → job %s (%s)", job["event_id"], job_id, job["name"])


#: The name it had in worker.py.
MediaConsumer = UploadConsumer
