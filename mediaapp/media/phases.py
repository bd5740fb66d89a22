"""Where a step's time goes: probe, ffmpeg, hash, publish and the rest, per step.

A step (or :func:`mediaapp.media.steps.run`) opens :func:`collecting`; the functions that do
the costly work are wrapped in :func:`timed`. Nested phases count once, for the outermost
(a probe that decodes a frame with ffmpeg is probe time). The manifest's ``phases_s`` is the
result: the overhead benchmark reads it to show what a job pays besides ffmpeg's encode.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: Phases of the step running in this context, and whether a phase is open now.
_current: ContextVar[tuple[dict[str, float], bool] | None] = ContextVar("phases", default=None)


@contextmanager
def collecting() -> Iterator[dict[str, float]]:
    """Collect the phases of the work done inside; the dict fills in as it runs."""
    totals: dict[str, float] = {}
    token = _current.set((totals, False))
    try:
        yield totals
    finally:
        _current.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the time inside as ``name`` (nothing outside :func:`collecting`)."""
    state = _current.get()
    if state is None or state[1]:
        yield
        return
    totals = state[0]
    token = _current.set((totals, True))
    started = time.perf_counter()
    try:
        yield
    finally:
        totals[name] = totals.get(name, 0.0) + time.perf_counter() - started
        _current.reset(token)


def timed(name: str) -> Callable[[F], F]:
    """Decorator form of :func:`phase`."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with phase(name):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def snapshot(total_s: float | None = None) -> dict[str, float]:
    """The phases so far, rounded, with ``other`` = ``total_s`` minus them when given."""
    state = _current.get()
    totals = dict(state[0]) if state else {}
    if total_s is not None:
        totals["other"] = max(total_s - sum(totals.values()), 0.0)
    return {k: round(v, 4) for k, v in sorted(totals.items())}
