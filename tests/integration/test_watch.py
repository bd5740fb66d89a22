"""Result push on the real Redis backend: a stored state wakes the waiter (no poll)."""

from __future__ import annotations

import threading
import uuid

from celery import Celery

from mediaapp.jobs.progress import PROGRESS
from mediaapp.jobs.watch import Watch

from ..conftest import REDIS_URL


def test_a_stored_state_wakes_the_watch() -> None:
    app = Celery("watch-test", broker="memory://", backend=REDIS_URL)
    task_id = uuid.uuid4().hex
    with Watch(app, task_id) as watch:
        assert watch.pushed
        assert watch.wait(0.05) is False  # nothing stored yet: the wait just times out
        store = threading.Timer(
            0.2, app.backend.store_result, (task_id, {"percent": 5.0}, PROGRESS)
        )
        store.start()
        # Woken by the message, far before the 30 s interval would have ended the wait.
        assert watch.wait(30) is True
        store.join()
    assert app.AsyncResult(task_id).state == PROGRESS


def test_other_backends_and_a_dead_redis_fall_back_to_polling() -> None:
    memory = Celery("watch-test", broker="memory://", backend="cache+memory://")
    assert not Watch(memory, "t").pushed
    dead = Celery("watch-test", broker="memory://", backend="redis://127.0.0.1:1/0")
    with Watch(dead, "t") as watch:
        assert not watch.pushed and watch.wait(0.01) is False
