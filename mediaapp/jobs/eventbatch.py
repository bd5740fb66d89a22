"""Lifecycle events of short tasks, batched in the worker's main process, acks held until confirmed.

A short task (``short=True``: ``media.ping``) is over in well under a millisecond. Publishing
its ``task.started`` and ``task.succeeded`` from the pool process cost one more durable,
confirmed message per task, and the pool process waited for the confirm: at a few hundred
tasks a second that was most of what the complete audit cost over the bare ``#`` mirror.

Here the main process, which acks task messages anyway (``acks_late``), writes the two
events of each short task that *succeeded* (it knows the task, its kwargs, when the pool
process took it and which one) and holds the message's ack. Every ``event_batch_s`` (0.05 s), or
at :data:`BATCH_MAX` tasks, one confirmed message carries the events of all of them
(:func:`events.bundle`), and only then are their messages acked. So an acked task's events
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
from typing import Any

from celery import Celery
from celery.worker import state as worker_state
from celery.worker.request import Request
from kombu import Producer

from mediaapp.jobs import events, routing
from mediaapp.jobs.confirms import PipelinedConfirms
from mediaapp.settings import Settings

log = logging.getLogger(__name__)

#: The most tasks in one batch (the longest wait is the setting ``event_batch_s``).
BATCH_MAX = 200
#: After a failed publish, the batch (still held) is tried again this much later.
RETRY_S = 1.0

#: This process's batch: set by the worker's consumer (before the pool forks) when it can batch.
_current: LifecycleBatch | None = None


class LifecycleBatch:
    """Held acks of short tasks and their events; one confirmed publish, then the acks."""

    def __init__(self, app: Celery, consumer: Any, wait_s: float) -> None:
        self.app = app
        self.consumer = consumer
        self.wait_s = wait_s
        self.bodies: list[dict[str, Any]] = []
        self.held: list[Request] = []
        self._due = False
        #: Prefetch added for the held acks (a held ack still counts against prefetch 1).
        self.granted = 0
        self._connection: Any = None
        self._channel: Any = None
        self._confirms: PipelinedConfirms | None = None

    def hold(self, request: Request) -> None:
        """Take a succeeded short task's events; ack its message once they are confirmed."""
        self.bodies.extend(lifecycle_of(request))
        self.held.append(request)
        self._grant()
        if len(self.held) >= BATCH_MAX or worker_state.should_stop is not None:
            self.flush()
        elif not self._due:
            self._due = True
            self.consumer.hub.call_later(self.wait_s, self._flush_later)

    def _grant(self) -> None:
        """Raise the prefetch so held acks do not hold back the next message (prefetch 1).

        Each change is a ``basic.qos`` round trip from the event loop, so the grant doubles
        as the batch grows (1, 2, 4, 8...): a few round trips a batch, and never more than
        twice the held acks' worth of messages prefetched beyond the setting.
        """
        qos = getattr(self.consumer, "qos", None)
        if qos is None or len(self.held) <= self.granted:
            return
        more = max(1, self.granted)
        qos.increment_eventually(more)
        self.granted += more

    def _flush_later(self) -> None:
        self._due = False
        self.flush()

    def flush(self) -> None:
        """Publish the held events in one message, wait for its confirm, then ack."""
        if not self.held:
            return
        try:
            self._publish(events.bundle(self.bodies))
        except Exception:  # keep everything held: the next attempt publishes them again
            log.warning("lifecycle batch of %d tasks not confirmed, retrying", len(self.held),
                        exc_info=True)  # fmt: skip
            self._drop_connection()
            if not self._due:
                self._due = True
                self.consumer.hub.call_later(RETRY_S, self._flush_later)
            return
        held, self.held, self.bodies = self.held, [], []
        for request in held:
            request._on_ack(log, request.connection_errors)
        qos = getattr(self.consumer, "qos", None)
        if qos is not None and self.granted:
            qos.decrement_eventually(self.granted)
        self.granted = 0

    def discard(self) -> None:
        """The consumer's connection is gone: its delivery tags cannot be acked any more.

        The messages come again (``redelivered``) and run again; their events then go out.
        """
        if self.held:
            log.warning("connection lost with %d short tasks' acks held: they run again",
                        len(self.held))  # fmt: skip
        self.held, self.bodies = [], []

    def close(self) -> None:
        self.flush()
        self._drop_connection()

    def _publish(self, body: dict[str, Any]) -> None:
        if self._confirms is None:
            self._connection = self.app.connection_for_write(heartbeat=0)
            self._channel = self._connection.channel()
            for queue in routing.TOPOLOGY:
                queue(self._channel).declare()
            self._confirms = PipelinedConfirms(self._channel)
        events._publish(Producer(self._channel), body, uuid.uuid4().hex)
        self._confirms.wait()

    def _drop_connection(self) -> None:
        connection, self._connection, self._channel, self._confirms = (
            self._connection,
            None,
            None,
            None,
        )
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken: that is why it is dropped
                log.debug("closing the lifecycle batch connection", exc_info=True)


def lifecycle_of(request: Request) -> list[dict[str, Any]]:
    """``task.started`` and ``task.succeeded`` of a finished short task, as its pool process
    would have written them (its pid, the time it took the task)."""
    kwargs = request.kwargs if isinstance(request.kwargs, dict) else {}
    fields = {
        "task": request.task_name,
        "task_id": request.id,
        "job_id": kwargs.get("job_id"),
        "input": kwargs.get("name"),
        "tenant": kwargs.get("tenant"),
        "retries": request.request_dict.get("retries", 0),
        "redelivered": bool((request.delivery_info or {}).get("redelivered")),
    }
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
