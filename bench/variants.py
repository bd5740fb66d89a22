"""The mediaapp app with ``media.ping`` as it was before a step of the dispatch benchmark, for
its ``ours-*`` ways (``celery -A bench.variants worker``, ``BENCH_VARIANT`` says which; the
rest unchanged):

* ``2msg``: ``task.started`` and ``task.succeeded`` as two messages a task, from the pool
  process (a plain task, not a short one);
* ``flower``: Celery's task events for Flower on for pings too (``task-received``,
  ``-started``, ``-succeeded``; the client's ``task-sent`` is the bench's to switch on).
"""

from __future__ import annotations

import os

from mediaapp.jobs.app import app
from tasks.media import ping

_variant = os.environ.get("BENCH_VARIANT", "")
if _variant == "2msg":
    ping.short = False  # type: ignore[attr-defined]
    ping.Request = "celery.worker.request:Request"
elif _variant == "flower":
    ping.send_events = True
elif _variant:
    raise SystemExit(f"unknown BENCH_VARIANT {_variant!r}")

__all__ = ["app"]
