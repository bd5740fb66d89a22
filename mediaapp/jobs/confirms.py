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
from contextlib import contextmanager
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
