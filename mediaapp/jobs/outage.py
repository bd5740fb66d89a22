"""Riding out a result-backend (Redis) outage instead of failing the work.

A running encode talks to the result backend on every progress tick (the PROGRESS state and
the cancel flag). Those calls must not kill the encode when Redis restarts: they degrade
(no progress shown, "not cancelled" assumed) for up to ``MEDIAAPP_BACKEND_GRACE_S``; past it
the step fails with :class:`~mediaapp.errors.BackendUnavailable`, which is retryable. The
final result is stored by Celery with ``result_backend_always_retry`` (configured here) and
clients (:meth:`mediaapp.jobs.client.Job.wait`) keep polling through the outage.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from celery.exceptions import BackendError
from kombu.utils.url import maybe_sanitize_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mediaapp.errors import BackendUnavailable
from mediaapp.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: What a result-backend call raises when the backend is down or unreachable.
BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BackendError,  # BackendGetMetaError / BackendStoreError: Celery's retries ran out
    ConnectionError,
    TimeoutError,
)

#: A failure this long after the previous one starts a new outage (seconds).
_OUTAGE_GAP_S = 5.0


def backend_config(settings: Settings) -> dict[str, Any]:
    """Result-backend settings for every process: short attempts, so a client asking a dead
    Redis hears so in about a second (not after Celery's default 20 reconnects)."""
    return {
        "result_backend_transport_options": {
            "retry_policy": {
                "max_retries": 2,
                "interval_start": 0.1,
                "interval_step": 0.2,
                "interval_max": 0.5,
            }
        },
        "redis_socket_connect_timeout": 2.0,
        "redis_socket_timeout": 10.0,
    }


def worker_backend_config(settings: Settings) -> dict[str, Any]:
    """Workers only: a stored result (the job's final state) waits out ``backend_grace_s``.

    Celery's ``always_retry`` loop repeats each short attempt with full-jitter back-off capped
    at 2 s (a mean of 1 s), enough times to cover the grace period. Clients do not get it:
    their polls must come back to check their own deadline.
    """
    cap_ms = 2000
    return {
        "result_backend_always_retry": True,
        "result_backend_base_sleep_between_retries_ms": 100,
        "result_backend_max_sleep_between_retries_ms": cap_ms,
        "result_backend_max_retries": max(3, math.ceil(settings.backend_grace_s * 2000 / cap_ms)),
    }


def on_worker_init(sender: Any = None, conf: Any = None, **_: Any) -> None:
    """``celeryd_init``: switch the worker's result backend to always-retry (before it exists)."""
    settings = get_settings()
    if conf is not None and settings.result_backend.startswith(("redis://", "rediss://")):
        conf.update(worker_backend_config(settings))


def backend_url(settings: Settings | None = None) -> str:
    """The result backend's URL without its password (for messages)."""
    return str(maybe_sanitize_url((settings or get_settings()).result_backend))


class Outage:
    """When one dependency started failing; raises past the grace period."""

    def __init__(
        self, grace_s: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._grace = grace_s
        self._clock = clock
        self._lock = threading.Lock()
        self.since: float | None = None
        self._last: float | None = None

    @property
    def grace_s(self) -> float:
        """The grace period (the setting unless given)."""
        return get_settings().backend_grace_s if self._grace is None else self._grace

    def failed(self, what: str, exc: BaseException) -> float:
        """Record a failed call; return the outage's length, or raise BackendUnavailable."""
        now = self._clock()
        with self._lock:
            if self.since is None or self._last is None or now - self._last > _OUTAGE_GAP_S:
                self.since = now
                log.warning(
                    "result backend %s unreachable (%s: %s); %s degrades for up to %g s",
                    backend_url(),
                    type(exc).__name__,
                    exc,
                    what,
                    self.grace_s,
                )
            self._last = now
            down = now - self.since
        if down > self.grace_s:
            raise BackendUnavailable(
                f"result backend {backend_url()} unreachable for {down:.0f} s "
                f"(grace {self.grace_s:g} s, MEDIAAPP_BACKEND_GRACE_S): is Redis running?"
            ) from exc
        return down

    def ok(self) -> None:
        """A call succeeded: the outage, if any, is over."""
        if self.since is not None:
            log.warning("result backend %s is back after %.1f s", backend_url(), self.down_s())
        with self._lock:
            self.since = self._last = None

    def down_s(self) -> float:
        """Seconds since the outage began (0 when there is none)."""
        since = self.since
        return 0.0 if since is None else self._clock() - since


#: The result backend's outage as this process sees it (shared by every check).
BACKEND = Outage()


_CLIENT_WARN_EVERY_S = 30.0
_last_client_warning = float("-inf")


def waiting_out_outage(job_id: str, exc: BaseException, deadline: float | None) -> str:
    """A client poll failed on the backend: log it, or raise BackendUnavailable past the
    caller's deadline (a typed, retryable error instead of a raw ``redis.ConnectionError``).

    Returns the state to report meanwhile.
    """
    if deadline is not None and time.monotonic() > deadline:
        raise BackendUnavailable(
            f"job {job_id}: result backend {backend_url()} unreachable at the deadline "
            f"({type(exc).__name__}); the job may still finish: ask again with "
            f"'mediaapp status {job_id}'"
        ) from exc
    global _last_client_warning
    now = time.monotonic()
    if now - _last_client_warning > _CLIENT_WARN_EVERY_S:
        _last_client_warning = now
        log.warning("job %s: result backend %s unreachable (%s), still waiting", job_id,
                    backend_url(), type(exc).__name__)  # fmt: skip
    return "UNKNOWN (result backend unreachable)"
