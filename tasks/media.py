"""Non-video tasks, routed to ``default_queue``."""

from __future__ import annotations

import socket
import time
from typing import Any

from mediaapp.jobs.app import app
from mediaapp.settings import get_settings


# No STARTED state: a ping is over before anyone could see it running, and tracking it cost
# two more Redis round trips a call. No stored result either, unless the caller asks for it
# (``apply_async(ignore_result=False)``): storing it and the client's subscription to it were a
# third of a ping's cost. ``short``: the worker's main process writes its lifecycle events,
# many pings' to a message, and acks once they are confirmed (mediaapp.jobs.eventbatch).
@app.task(
    name="media.ping",
    track_started=False,
    ignore_result=True,
    short=True,
    send_events=False,  # routing.SHORT_TASKS: not in Flower's task list, all in the audit log
    Request="mediaapp.jobs.eventbatch:ShortRequest",
)
def ping(job_id: str | None = None, payload: Any = None) -> dict[str, Any]:
    """Answer with who and when: a health check and the unit of dispatch benchmarks."""
    counter = get_settings().ping_counter
    if counter:  # the dispatch benchmark counts finished tasks in the result backend's Redis
        app.backend.client.incr(counter)
    return {"pong": time.time(), "hostname": socket.gethostname(), "payload": payload}
