"""mediaapp: distributed media processing on Celery, Kombu, RabbitMQ and ffmpeg.

``celery -A mediaapp worker -Q video_queue`` finds :data:`app`; producers use :func:`submit`.
Importing ``mediaapp`` (or any of its modules) builds nothing and writes nothing: the names
below are loaded on first use (PEP 562), so the media layer can be used without Celery.

Layers (see the README's architecture section)::

    mediaapp.media   files -> files: probe, profiles, ffmpeg, ladders, packaging, chunks
    mediaapp.jobs    the Celery app, routing, events, the job model, the step base class
    mediaapp.ops     audit consumer, dead letters, metrics, Flower, report, CLI, demo
    tasks/           the Celery tasks: one call each into mediaapp.media
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Public name → the module that defines it.
_EXPORTS = {
    "app": "mediaapp.jobs.app",
    "Job": "mediaapp.jobs.client",
    "probe": "mediaapp.jobs.client",
    "submit": "mediaapp.jobs.client",
    "thumbnail": "mediaapp.jobs.client",
    "MediaError": "mediaapp.errors",
    "Settings": "mediaapp.settings",
    "get_settings": "mediaapp.settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mediaapp' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
