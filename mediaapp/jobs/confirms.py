"""Publisher confirms, pipelined: publish many messages, then wait once for all their confirms.

``confirm_publish`` makes py-amqp wait for the broker's confirm after *every* publish, a full
round trip (and, for a persistent message, the broker's disk write) per message. That is the
right default for one job at a time, and the wrong one for many small messages in a row. Here
a channel is put in confirm mode once, its publishes go out without waiting, and
:meth:`PipelinedConfirms.wait` blocks until the broker has confirmed every one of them: the
same guarantee (nothing counts as sent before the broker has it), one wait per batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from amqp.exceptions import MessageNacked
from celery import Celery
from kombu import Producer

from mediaapp import defaults


class PipelinedConfirms:
    """Tracks the publisher confirms of one AMQP channel whose publishes do not wait."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_select()
        # After confirm.select the broker numbers this channel's publishes 1, 2, 3, ...
        self.published = 0
        self.unconfirmed: set[int] = set()
        self.nacked = 0
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        # py-amqp picks its per-channel publish method the same way (an instance attribute).
        channel.basic_publish = self._publish

    def _publish(self, *args: Any, **kwargs: Any) -> Any:
        result = self.channel._basic_publish(*args, **kwargs)
        self.published += 1
        self.unconfirmed.add(self.published)
        return result

    def _settle(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.unconfirmed = {t for t in self.unconfirmed if t > tag}
        else:
            self.unconfirmed.discard(tag)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        before = len(self.unconfirmed)
        self._settle(tag, multiple)
        self.nacked += before - len(self.unconfirmed)

    def wait(self, timeout: float = defaults.CONFIRM_TIMEOUT_S) -> None:
        """Return once the broker confirmed every publish so far; raise if it refused any.

        Raises :class:`amqp.exceptions.MessageNacked`, ``TimeoutError``, or the connection's
        error: then the caller cannot know which messages arrived and publishes them again.
        """
        deadline = time.monotonic() + timeout
        while self.unconfirmed and not self.nacked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.unconfirmed)} publishes not confirmed")
            try:
                self.channel.connection.drain_events(timeout=remaining)
            except TimeoutError:  # socket.timeout too
                continue
        if self.nacked:
            raise MessageNacked(f"the broker refused {self.nacked} messages")


@contextmanager
def confirmed_batch(app: Celery) -> Iterator[Producer]:
    """A producer for many publishes (``send_task(..., producer=...)``), confirmed at the end.

    The block returns only when the broker has confirmed every message published in it, and
    raises if it cannot tell (then publish them again: the audit log flags duplicates).
    """
    with app.connection_for_write() as connection:
        channel = connection.channel()
        confirms = PipelinedConfirms(channel)
        yield app.amqp.Producer(channel)
        confirms.wait()


def confirmed_channel(app: Celery, declare: Any = ()) -> tuple[Any, Any, PipelinedConfirms]:
    """A publishing connection of its own, one channel in confirm mode, ``declare`` declared.

    No AMQP heartbeats: a publisher idle between messages never services them, and a dropped
    connection shows at the next publish or confirm anyway (then: open another, publish again).
    """
    connection = app.connection_for_write(heartbeat=0)
    channel = connection.channel()
    for entity in declare:  # once per connection, not once per message
        entity(channel).declare()
    return connection, channel, PipelinedConfirms(channel)


class LoopPublisher:
    """A confirm-mode channel of its own whose confirms the worker's event loop reads.

    For the worker's main process (:mod:`mediaapp.jobs.eventbatch`): waiting there for a
    confirm (the broker's disk write: 5-25 ms here) would stall every task the loop serves.
    :meth:`send` returns at once with the publish's number; the hub calls ``on_readable`` when
    confirms arrive, which calls :meth:`poll`; :meth:`confirmed` then says which are in.
    """

    def __init__(self, app: Celery, declare: Any = ()) -> None:
        self.app = app
        self.declare = declare
        self.connection: Any = None
        self.confirms: PipelinedConfirms | None = None
        self._producer: Producer | None = None
        self._hub: Any = None
        self._fd: Any = None

    def send(self, body: Any, message_id: str, hub: Any, on_readable: Any, **options: Any) -> int:
        """Publish without waiting; return the publish's number on this channel."""
        if self.confirms is None:
            self.connection, channel, self.confirms = confirmed_channel(self.app, self.declare)
            self._producer = Producer(channel)
            self._hub, self._fd = hub, self.connection.connection.sock
            hub.add_reader(self._fd, on_readable)
        assert self._producer is not None
        self._producer.publish(body, message_id=message_id, **options)
        return self.confirms.published

    def poll(self) -> None:
        """Read whatever the broker sent (confirms), without blocking."""
        try:
            self.connection.connection.drain_events(timeout=0)
        except (TimeoutError, BlockingIOError):
            return

    def confirmed(self, tag: int) -> bool:
        return self.confirms is not None and tag not in self.confirms.unconfirmed

    @property
    def nacked(self) -> int:
        return self.confirms.nacked if self.confirms is not None else 0

    def wait(self, timeout: float = defaults.CONFIRM_TIMEOUT_S) -> None:
        """Block until every publish is confirmed (a stopping worker's last batch)."""
        if self.confirms is not None:
            self.confirms.wait(timeout)

    def close(self) -> None:
        """Forget the channel (after an error, or at the end); the next send opens another."""
        connection, self.connection, self.confirms, self._producer = (
            self.connection, None, None, None)  # fmt: skip
        if self._hub is not None and self._fd is not None:
            with suppress(Exception):  # the loop already dropped it
                self._hub.remove_reader(self._fd)
        self._hub = self._fd = None
        if connection is not None:
            with suppress(Exception):  # already broken: that is why it is closed
                connection.close()
