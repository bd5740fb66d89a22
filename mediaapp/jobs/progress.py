"""ffmpeg ``-progress`` → a throttled stream of Celery ``PROGRESS`` states."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mediaapp import defaults
from mediaapp.media.ffprogress import Progress

log = logging.getLogger(__name__)

#: Custom Celery state a running step reports; its ``meta`` is :meth:`ProgressReporter.meta`.
PROGRESS = "PROGRESS"
#: Custom Celery state of a job stopped by ``mediaapp cancel`` / ``Job.cancel()``.
CANCELLED = "CANCELLED"
#: Seconds without progress updates after one failed (the result backend is down).
QUIET_AFTER_FAILURE_S = 2.0


class ProgressReporter:
    """Callable given to :func:`mediaapp.ffmpeg.run`; forwards at most one update per interval."""

    def __init__(
        self,
        update: Callable[[dict[str, Any]], None],
        *,
        step: str,
        context: dict[str, Any] | None = None,
        interval_s: float = defaults.PROGRESS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        check: Callable[[], None] | None = None,
    ) -> None:
        self._update = update
        self._step = step
        self._context = context or {}
        self._interval = interval_s
        self._clock = clock
        #: Called on every forwarded tick, outside the error guard: it may raise (JobCancelled)
        #: to stop the encode.
        self._check = check
        self._last = float("-inf")
        #: No update is tried before this (the backend failed the last one).
        self._quiet_until = float("-inf")
        #: Highest percent sent: ffmpeg's out_time can step back near the end of an encode
        #: (streams flushed in another order), and a progress bar must never move backwards.
        self._high = 0.0
        self.sent = 0

    def meta(self, progress: Progress) -> dict[str, Any]:
        """The state's meta: percent, fps, speed (x realtime) and ETA in seconds."""
        eta = None
        if progress.percent is not None and progress.speed > 0 and progress.percent < 100:
            total = progress.out_time_s * 100 / progress.percent if progress.percent else 0
            eta = round(max(total - progress.out_time_s, 0) / progress.speed, 1)
        percent = None
        if progress.percent is not None:
            percent = self._high = max(self._high, round(progress.percent, 1))
        return {
            **self._context,
            "step": self._step,
            "percent": percent,
            "fps": progress.fps,
            "speed": progress.speed,
            "out_time_s": round(progress.out_time_s, 3),
            "eta_s": 0.0 if progress.done else eta,
        }

    def __call__(self, progress: Progress) -> None:
        now = self._clock()
        if not progress.done and now - self._last < self._interval:
            return
        self._last = now
        if self._check is not None:
            self._check()  # degrades by itself while the backend is down (cancel.py)
        if now < self._quiet_until and not progress.done:
            return
        try:
            self._update(self.meta(progress))
            self.sent += 1
        except Exception as exc:  # a lost progress update must never kill the encode
            # The backend is down (Celery already retried): skip updates for a while.
            self._quiet_until = now + QUIET_AFTER_FAILURE_S
            log.warning("progress update failed (%s: %s)", type(exc).__name__, exc)
