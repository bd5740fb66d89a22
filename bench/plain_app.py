"""Plain Celery, for the dispatch baseline: default settings, one direct queue, no audit mirror,
no events. The task does the same as ``media.ping`` plus the finish counter both share."""

from __future__ import annotations

import os

import redis
from celery import Celery

app = Celery("plain", broker=os.environ.get("BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                task_default_queue="plain_queue", worker_hijack_root_logger=False)  # fmt: skip
_counter = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))


@app.task(name="plain.ping")
def ping(job_id: str | None = None, payload: object = None) -> None:
    """Trivial work plus one INCR so the benchmark knows when all tasks ran."""
    _counter.incr(os.environ.get("BENCH_COUNTER", "bench:plain"))
