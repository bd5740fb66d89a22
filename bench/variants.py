"""The mediaapp app with ``media.ping`` as it was before it became a short task, for the
dispatch benchmark's ``ours-2msg`` way: ``celery -A bench.variants worker`` publishes
``task.started`` and ``task.succeeded`` as two messages, each task (the rest unchanged)."""

from __future__ import annotations

from mediaapp.jobs.app import app
from tasks.media import ping

ping.short = False  # type: ignore[attr-defined]

__all__ = ["app"]
