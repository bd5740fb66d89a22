"""Waking a client when a job's result changes, instead of polling on a timer.

Celery's Redis backend publishes every state it stores (PROGRESS, SUCCESS, ...) on a channel
named after the result key. :class:`Watch` subscribes to that channel before the client
reads the state, so a change between the read and the wait is never missed; a client waits
until a message arrives or ``interval`` passes (the poll stays as the fallback for other
backends, for fanned-out steps, and while the subscription is down).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from celery import Celery

log = logging.getLogger(__name__)


class Watch:
    """A subscription to one task's result channel (a plain sleep on other backends)."""

    def __init__(self, app: Celery, task_id: str) -> None:
        self._pubsub: Any = None
        backend = app.backend
        if not hasattr(backend, "get_key_for_task") or not hasattr(backend, "client"):
            return
        try:
            pubsub = backend.client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(backend.get_key_for_task(task_id))
            self._pubsub = pubsub
        except Exception as exc:  # Redis is down: the caller polls, and reports the outage
            log.debug("no result subscription for %s (%s); polling", task_id, exc)

    @property
    def pushed(self) -> bool:
        """Whether state changes wake :meth:`wait` (else it only sleeps)."""
        return self._pubsub is not None

    def wait(self, interval: float) -> bool:
        """Sleep until the result changes or ``interval`` passes; True if it changed."""
        if self._pubsub is None:
            time.sleep(interval)
            return False
        try:
            deadline = time.monotonic() + interval
            while (left := deadline - time.monotonic()) > 0:
                if self._pubsub.get_message(timeout=left) is not None:
                    return True
            return False
        except Exception as exc:  # the subscription broke: poll from now on
            log.debug("result subscription lost (%s); polling", exc)
            self.close()
            return False

    def close(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            with contextlib.suppress(Exception):  # already broken: nothing to release
                pubsub.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
