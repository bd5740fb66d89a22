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
#: When the step running in this context started (perf_counter).
_started: ContextVar[float] = ContextVar("phases_started", default=0.0)


@contextmanager
def collecting() -> Iterator[dict[str, float]]:
    """Collect the phases of the work done inside; the dict fills in as it runs. Inside a
    collection already open (a task around the media function it calls), join that one."""
    state = _current.get()
    if state is not None:
        yield state[0]
        return
    totals: dict[str, float] = {}
    token, start = _current.set((totals, False)), _started.set(time.perf_counter())
    try:
        yield totals
    finally:
        _current.reset(token)
        _started.reset(start)


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


def snapshot() -> dict[str, float]:
    """The phases so far, rounded, and ``other``: the rest of the time since the step began
    (the phases add up to the step's time so far). Empty outside :func:`collecting`."""
    state = _current.get()
    if state is None:
        return {}
    totals = dict(state[0])
    totals["other"] = max(time.perf_counter() - _started.get() - sum(totals.values()), 0.0)
    return {k: round(v, 4) for k, v in sorted(totals.items())}
