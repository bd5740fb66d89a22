"""Non-video tasks, routed to ``default_queue``."""

from __future__ import annotations

import socket
import time
from typing import Any

from mediaapp.jobs.app import app
from mediaapp.settings import get_settings


# No STARTED state: a ping is over before anyone could see it running, and tracking it cost
# two more Redis round trips a call.
@app.task(name="media.ping", track_started=False)
def ping(job_id: str | None = None, payload: Any = None) -> dict[str, Any]:
    """Answer with who and when: a health check and the unit of dispatch benchmarks."""
    counter = get_settings().ping_counter
    if counter:  # the dispatch benchmark counts finished tasks in the result backend's Redis
        app.backend.client.incr(counter)
    return {"pong": time.time(), "hostname": socket.gethostname(), "payload": payload}
