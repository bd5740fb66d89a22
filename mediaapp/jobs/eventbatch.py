"""Lifecycle events of short tasks, batched in the worker's main process, acks held until confirmed.

A short task (``short=True``: ``media.ping``) is over in well under a millisecond. Publishing
its ``task.started`` and ``task.succeeded`` from the pool process cost one more durable,
confirmed message per task, and the pool process waited for the confirm: at a few hundred
tasks a second that was most of what the complete audit cost over the bare ``#`` mirror.

Here the main process, which acks task messages anyway (``acks_late``), writes the two
events of each short task that *succeeded* (it knows the task, its kwargs, when the pool
process took it and which one) and holds the message's ack. Every ``event_batch_s`` (0.05 s),
or at :data:`BATCH_MAX` tasks, one message carries the events of all of them
(:func:`events.bundle`); their messages are acked when the event loop reads the broker's
confirm of it (nothing waits for it: a confirm takes 5-25 ms here). So an acked task's events
are on the durable audit queue, as before; a crash in between loses nothing either: the
messages were not acked, they are delivered again and run again (``redelivered``), as any
``acks_late`` task after a crash. Failures, retries and cancels of short tasks are rare and
keep the per-task path (the pool process publishes their events itself).

Only a prefork worker with Kombu's event loop batches (the hub gives the timer); a solo or
threads pool, or the embedded broker, keeps the per-task path.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from celery.worker import state as worker_state
from celery.worker.request import Request

from mediaapp import defaults
from mediaapp.jobs import events, routing
from mediaapp.jobs.confirms import LoopPublisher
from mediaapp.settings import Settings

log = logging.getLogger(__name__)

#: The most tasks in one batch (the longest wait is the setting ``event_batch_s``).
BATCH_MAX = 200
#: After a failed publish, the batches (acks still held) are published again this much later;
#: and how often an unconfirmed batch is checked for CONFIRM_TIMEOUT_S.
RETRY_S = 1.0

#: This process's batch: set by the worker's consumer (before the pool forks) when it can batch.
_current: LifecycleBatch | None = None


@dataclass
class Batch:
    """Succeeded short tasks whose acks wait for one message with all their events."""

    requests: list[Request] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    #: Prefetch added while these acks are held (a held ack still counts against prefetch 1).
    granted: int = 0
    #: The same id if it must be published again (the audit log flags a second copy).
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: Its publish's number on the publisher's channel (0: not published on it yet).
    tag: int = 0
    sent_at: float = 0.0


class LifecycleBatch:
    """Held acks of short tasks and their events: one publish a batch, acks on its confirm.

    Nothing here blocks the worker's event loop: the batch is published without waiting and
    its acks go when the loop reads the broker's confirm (:class:`LoopPublisher`). A failed
    or unconfirmed publish keeps every ack held and is published again.
    """

    def __init__(self, app: Celery, consumer: Any, wait_s: float) -> None:
        self.consumer = consumer
        self.wait_s = wait_s
        self.filling = Batch()
        self.in_flight: list[Batch] = []
        self.publisher = LoopPublisher(app, declare=routing.TOPOLOGY)
        self._due = False
        self._watching = False

    def hold(self, request: Request) -> None:
        """Take a succeeded short task's events; ack its message once they are confirmed."""
        batch = self.filling
        batch.bodies.extend(lifecycle_of(request))
        batch.requests.append(request)
        self._grant(batch)
        if len(batch.requests) >= BATCH_MAX or worker_state.should_stop is not None:
            self.flush()
        elif not self._due:
            self._due = True
            self.consumer.hub.call_later(self.wait_s, self._flush_later)

    def _grant(self, batch: Batch) -> None:
        """Raise the prefetch so held acks do not hold back the next message (prefetch 1).

        Each change is a ``basic.qos`` round trip from the event loop, so the grant doubles
        as the batch grows (1, 2, 4, 8...): a few round trips a batch, and never more than
        twice the held acks' worth of messages prefetched beyond the setting.
        """
        qos = getattr(self.consumer, "qos", None)
        if qos is None or len(batch.requests) <= batch.granted:
            return
        more = max(1, batch.granted)
        qos.increment_eventually(more)
        batch.granted += more

    def _flush_later(self) -> None:
        self._due = False
        self.flush()

    def flush(self) -> None:
        """Publish the filling batch (and any not yet published), without waiting."""
        if self.filling.requests:
            self.in_flight.append(self.filling)
            self.filling = Batch()
        try:
            for batch in self.in_flight:
                if not batch.tag:
                    batch.tag = self.publisher.send(
                        events.bundle(batch.bodies), batch.message_id, self.consumer.hub,
                        self._on_readable, exchange=routing.MEDIA_EXCHANGE,
                        routing_key=routing.event_key(events.BUNDLE), serializer="json",
                        delivery_mode=2)  # fmt: skip
                    batch.sent_at = time.monotonic()
        except Exception:
            self._publish_again("could not publish")
            return
        self._settle()
        if self.in_flight and not self._watching:
            self._watching = True
            self.consumer.hub.call_later(RETRY_S, self._watch)

    def _on_readable(self) -> None:
        try:
            self.publisher.poll()
        except Exception:
            self._publish_again("lost the connection")
            return
        self._settle()

    def _settle(self, at_once: bool = False) -> None:
        """Ack every batch the broker confirmed, oldest first.

        Celery's ack (``request._on_ack``) goes through the event loop's next turn; a stopping
        worker's loop has no next turn, so its last batches are acked ``at_once``.
        """
        if self.publisher.nacked:
            self._publish_again("the broker refused")
            return
        while self.in_flight and self.in_flight[0].tag:
            if not self.publisher.confirmed(self.in_flight[0].tag):
                return
            batch = self.in_flight.pop(0)
            for request in batch.requests:
                if at_once:
                    request.message.ack_log_error(log, request.connection_errors)
                else:
                    request._on_ack(log, request.connection_errors)
            qos = getattr(self.consumer, "qos", None)
            if qos is not None and batch.granted:
                qos.decrement_eventually(batch.granted)

    def _watch(self) -> None:
        """While batches are out: one unconfirmed for too long is published again."""
        self._watching = False
        if not self.in_flight:
            return
        oldest = self.in_flight[0]
        if oldest.tag and time.monotonic() - oldest.sent_at > defaults.CONFIRM_TIMEOUT_S:
            self._publish_again("no confirm")
            return
        self._watching = True
        self.consumer.hub.call_later(RETRY_S, self._watch)

    def _publish_again(self, why: str) -> None:
        """The publisher failed: keep every ack held, publish each batch again soon."""
        log.warning("lifecycle events of %d short tasks: %s, publishing again",
                    sum(len(b.requests) for b in self.in_flight), why, exc_info=True)  # fmt: skip
        self.publisher.close()
        for batch in self.in_flight:
            batch.tag = 0
        if not self._due:
            self._due = True
            self.consumer.hub.call_later(RETRY_S, self._flush_later)

    def discard(self) -> None:
        """The consumer's connection is gone: its delivery tags cannot be acked any more.

        The messages come again (``redelivered``) and run again; their events then go out.
        """
        lost = len(self.filling.requests) + sum(len(b.requests) for b in self.in_flight)
        if lost:
            log.warning("connection lost with %d short tasks' acks held: they run again", lost)
        self.filling, self.in_flight = Batch(), []

    def close(self) -> None:
        """A stopping worker: publish what is held, wait for the confirms, ack, close."""
        self.flush()
        try:
            self.publisher.wait()
        except Exception:  # not acked: the messages come again
            log.warning("lifecycle events not confirmed at shutdown", exc_info=True)
        else:
            self._settle(at_once=True)
        self.publisher.close()


def lifecycle_of(request: Request) -> list[dict[str, Any]]:
    """``task.started`` and ``task.succeeded`` of a finished short task, as its pool process
    would have written them (its pid, the time it took the task)."""
    kwargs = request.kwargs if isinstance(request.kwargs, dict) else {}
    retries = request.request_dict.get("retries", 0)
    fields = events.lifecycle_fields(
        request.task_name, request.id, kwargs, retries, request.delivery_info
    )
    now = time.time()
    started_at = request.time_start or now
    pid = request.worker_pid or os.getpid()
    started = events.build_event("task.started", **fields) | {"ts": started_at, "pid": pid}
    done = {"runtime_s": round(now - started_at, 3)}
    succeeded = events.build_event("task.succeeded", **fields, **done) | {"pid": pid}
    return [started, succeeded]


class ShortRequest(Request):
    """A short task's request: on success its ack waits for the batch of its events.

    Celery builds a subclass of this per task whose ``on_success`` acks through
    :meth:`acknowledge`; every other ending (failure, retry, timeout, revoke) passes through
    the methods below first and is acked at once, its events published by the pool process.
    """

    _mediaapp_other_end = False
    acknowledged: bool

    def acknowledge(self) -> None:
        batch = _current
        if (
            batch is None
            or not getattr(self.task, "short", False)
            or self.acknowledged
            or self._mediaapp_other_end
            or self.time_start is None  # never ran (revoked before it started)
        ):
            super().acknowledge()
            return
        self.acknowledged = True
        batch.hold(self)

    def on_failure(self, *args: Any, **kwargs: Any) -> Any:
        self._mediaapp_other_end = True
        return super().on_failure(*args, **kwargs)

    def on_retry(self, *args: Any, **kwargs: Any) -> Any:
        self._mediaapp_other_end = True
        return super().on_retry(*args, **kwargs)

    def on_timeout(self, *args: Any, **kwargs: Any) -> Any:
        self._mediaapp_other_end = True
        return super().on_timeout(*args, **kwargs)

    def _announce_revoked(self, *args: Any, **kwargs: Any) -> Any:
        self._mediaapp_other_end = True
        return super()._announce_revoked(*args, **kwargs)


def start(app: Celery, consumer: Any, settings: Settings) -> LifecycleBatch | None:
    """Batch in this (main) process if it can: lifecycle events on, confirms, an event loop.

    Called before the pool forks: its processes then know to leave the events of a short
    task that succeeded to this process (:func:`events.leave_short_tasks_to_main`).
    """
    global _current
    confirms = app.conf.broker_transport_options.get("confirm_publish")
    hub = getattr(consumer, "hub", None)
    if settings.lifecycle_events and settings.event_batch_s > 0 and confirms and hub is not None:
        _current = LifecycleBatch(app, consumer, settings.event_batch_s)
        events.leave_short_tasks_to_main(True)
    return _current
