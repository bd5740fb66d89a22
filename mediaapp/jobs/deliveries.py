"""Count deliveries of each task message, to stop poison messages.

Classic queues have no delivery limit (quorum queues do; see the README for why we use
classic ones), and with ``task_reject_on_worker_lost`` a message whose input kills the worker
would be redelivered for ever. Each attempt is counted here under (task id, retry number)
before any work starts; past :data:`~mediaapp.defaults.MAX_DELIVERIES` the task fails with
:class:`~mediaapp.errors.PoisonMessage` and the message is dead-lettered.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mediaapp.jobs import job, outage
from mediaapp.jobs.outage import BACKEND_ERRORS
from mediaapp.settings import get_settings


def count_delivery(backend: Any, task_id: str, retries: int) -> int:
    """Record one more delivery of (task_id, retries) and return how many there have been."""
    key = job.delivery_key(task_id, retries)
    client = getattr(backend, "client", None)
    if client is not None and hasattr(client, "incr"):  # Redis result backend: shared by all
        try:
            pipe = client.pipeline()
            pipe.incr(key)
            pipe.expire(key, job.KEY_TTL_S)  # long after any redelivery
            count, _ = pipe.execute()
        except BACKEND_ERRORS as exc:  # the backend restarts: run, uncounted, within the grace
            outage.BACKEND.failed("the poison-message counter", exc)
            return 1
        return int(count)
    return _count_in_file(get_settings().data_dir / "deliveries" / key.replace(":", "_"))


def counted_id(task_id: str, kwargs: dict[str, Any] | None) -> str:
    """The id a message's deliveries are counted under: its task id, and the round of a
    per-title search's body (which replaces itself round after round under the job's id:
    each round is a message of its own, counted apart)."""
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    return task_id + (f"-round{kwargs['round']}" if "round" in kwargs else "")


def reset_deliveries(backend: Any, task_id: str, retries: int) -> None:
    """Forget the count (an operator re-submits a dead letter on purpose)."""
    key = job.delivery_key(task_id, retries)
    client = getattr(backend, "client", None)
    if client is not None and hasattr(client, "delete"):
        client.delete(key)
        return
    (get_settings().data_dir / "deliveries" / key.replace(":", "_")).unlink(missing_ok=True)


def _count_in_file(path: Path) -> int:
    # One byte appended per delivery: O_APPEND makes concurrent appends safe on one machine.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, b".")
        return os.fstat(fd).st_size
    finally:
        os.close(fd)
