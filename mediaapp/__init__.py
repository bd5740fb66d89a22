"""mediaapp: distributed media processing on Celery, Kombu, RabbitMQ and ffmpeg.

``celery -A mediaapp worker -Q video_queue`` finds :data:`app`; producers use :func:`submit`.
The Celery app and the client are imported on first use (PEP 562), not by ``import mediaapp``:
building the app reads the settings, and a bad ``MEDIAAPP_*`` variable must reach the CLI as a
configuration error (exit 78), not a traceback while ``mediaapp.ops.cli`` is being imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mediaapp.errors import MediaError
from mediaapp.settings import Settings, get_settings

if TYPE_CHECKING:
    from mediaapp.jobs.app import app
    from mediaapp.jobs.client import Job, probe, submit, thumbnail

_LAZY = {
    "app": "mediaapp.jobs.app",
    "Job": "mediaapp.jobs.client",
    "probe": "mediaapp.jobs.client",
    "submit": "mediaapp.jobs.client",
    "thumbnail": "mediaapp.jobs.client",
}

__all__ = ["Job", "MediaError", "Settings", "app", "get_settings", "probe", "submit", "thumbnail"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mediaapp' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
