"""The dead-letter queue: what failed for good, why, and re-submitting it.

Task queues dead-letter into ``media_dlx`` → ``dead_letter_queue`` (bound ``#``): a job that
failed (bad input, retries exhausted, poison message), a message the worker refused (pickle,
malformed). RabbitMQ keeps the original routing key and adds ``x-death`` (reason, queue,
time, count); the job's error comes from the result backend.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from celery import Celery
from kombu.message import Message

from mediaapp.jobs import routing
from mediaapp.jobs.deliveries import counted_id, reset_deliveries

#: Headers RabbitMQ adds on dead-lettering; dropped when a message is re-submitted.
_DEATH_HEADERS = (
    "x-death",
    "x-first-death-reason",
    "x-first-death-queue",
    "x-first-death-exchange",
    "x-last-death-reason",
    "x-last-death-queue",
    "x-last-death-exchange",
)


@dataclass
class DeadLetter:
    """One dead-lettered message as an operator needs to see it."""

    task_id: str | None
    task: str | None
    routing_key: str | None
    reason: str | None
    queue: str | None
    died_at: str | None
    count: int
    job_id: str | None
    input: str | None
    error: str | None
    content_type: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def describe(message: Message, app: Celery) -> DeadLetter:
    """Read a dead letter's story from its headers, body and the result backend."""
    headers = message.headers or {}
    deaths = headers.get("x-death") or [{}]
    death = deaths[0]
    keys = death.get("routing-keys") or [message.delivery_info.get("routing_key")]
    kwargs = _kwargs(message)
    task_id = headers.get("id")
    error = None
    if task_id and headers.get("task"):
        result = app.AsyncResult(task_id)
        if result.state == "FAILURE":
            error = f"{type(result.result).__name__}: {result.result}"
    died = death.get("time")
    return DeadLetter(
        task_id=task_id,
        task=headers.get("task"),
        routing_key=keys[0] if keys else None,
        reason=death.get("reason"),
        queue=death.get("queue"),
        died_at=died.isoformat() if hasattr(died, "isoformat") else (str(died) if died else None),
        count=int(death.get("count", 1)),
        job_id=kwargs.get("job_id") if isinstance(kwargs, dict) else None,
        input=kwargs.get("name") if isinstance(kwargs, dict) else None,
        error=error,
        content_type=message.content_type,
    )


def _kwargs(message: Message) -> Any:
    """A dead letter's task kwargs, if its body is a readable JSON task message."""
    if message.content_type == "application/json":
        try:
            body = message.decode()
            return body[1] if isinstance(body, list) and len(body) > 1 else {}
        except Exception:  # a malformed body is exactly what may end up here
            return {}
    return {}


def _browse(app: Celery, limit: int) -> Any:
    """Yield (connection, messages) got without ack: closing the channel puts them back."""
    conn = app.connection_for_write()
    conn.ensure_connection(max_retries=3)
    channel = conn.channel()
    queue = routing.DEAD_LETTER_QUEUE(channel)
    queue.declare()
    messages = []
    for _ in range(limit):
        message = queue.get(no_ack=False, accept=["json", "application/x-python-serialize"])
        if message is None:
            break
        messages.append(message)
    return conn, channel, messages


def list_dead(app: Celery, limit: int = 1000) -> list[DeadLetter]:
    """Every dead letter (up to ``limit``), left in the queue."""
    conn, channel, messages = _browse(app, limit)
    try:
        return [describe(m, app) for m in messages]
    finally:
        channel.close()  # unacked → requeued
        conn.release()


def retry_dead(app: Celery, task_id: str) -> DeadLetter | None:
    """Re-publish the dead letter of ``task_id`` (a task id, or the job id of one of its steps)
    to its original routing key; None if there is none."""
    conn, channel, messages = _browse(app, 100_000)
    try:
        for message in messages:
            info = describe(message, app)
            if task_id not in ((message.headers or {}).get("id"), info.job_id):
                continue
            headers = {k: v for k, v in (message.headers or {}).items() if k not in _DEATH_HEADERS}
            producer = conn.Producer(channel)
            producer.publish(
                message.body,
                exchange=routing.MEDIA_EXCHANGE,
                routing_key=info.routing_key,
                headers=headers,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                delivery_mode=2,
                message_id=uuid.uuid4().hex,
                declare=list(routing.TOPOLOGY),
            )
            counted = counted_id(str(headers.get("id")), _kwargs(message))
            reset_deliveries(app.backend, counted, int(headers.get("retries") or 0))
            message.ack()
            return info
        return None
    finally:
        channel.close()
        conn.release()
