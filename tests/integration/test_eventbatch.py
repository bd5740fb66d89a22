"""Short tasks' lifecycle events, batched by the worker's main process, on the real RabbitMQ:
an ack never goes before its task's events are confirmed, so a killed worker loses nothing
and a stopped one leaves nothing behind."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mediaapp.jobs.confirms import confirmed_batch
from mediaapp.ops.audit import read_log

from ..conftest import Proc, child_env, wait_for, worker_cmd

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

#: Acks held this long (the setting's upper bound): long enough to act while they are held.
HOLD_S = "5"


def _ping_worker(spawn: Callable[..., Proc], counter: str, hold_s: str) -> Proc:
    cmd, _ = worker_cmd("default_queue", "-c", "2", "-l", "info")
    env = child_env(MEDIAAPP_PING_COUNTER=counter, MEDIAAPP_EVENT_BATCH_S=hold_s)
    proc = spawn(cmd, env, name="worker")
    proc.wait_for("ready.", timeout=60)
    return proc


def _send_pings(n: int) -> set[str]:
    from mediaapp.jobs.app import app

    with confirmed_batch(app) as producer:
        return {app.send_task("media.ping", producer=producer).id for _ in range(n)}


def _ran(counter: str) -> int:
    from mediaapp.jobs.app import app

    return int(app.backend.client.get(counter) or 0)


def _lifecycle(log: Path, ids: set[str]) -> list[dict]:
    return [r for r in read_log(log) if r.get("task_id") in ids and r["kind"] == "event"]


def _five_pings_run_acks_held(spawn: Callable[..., Proc]) -> tuple[str, Proc, set[str]]:
    """A worker holding acks for HOLD_S, and 5 pings it ran: (their counter, it, their ids)."""
    counter = f"test:pings:{uuid.uuid4().hex}"
    worker = _ping_worker(spawn, counter, HOLD_S)
    ids = _send_pings(5)
    wait_for(lambda: _ran(counter) == 5, timeout=30, what="5 pings run")
    return counter, worker, ids


def test_a_killed_worker_loses_no_event_its_held_acks_run_again(
    spawn: Callable[..., Proc], audit_consumer: Path
) -> None:
    counter, worker, ids = _five_pings_run_acks_held(spawn)
    time.sleep(0.5)  # the mirror's copies reach the log; the events are held with the acks
    assert _lifecycle(audit_consumer, ids) == []
    assert {r["task_id"] for r in read_log(audit_consumer) if r["kind"] == "task"} >= ids
    worker.kill()  # SIGKILL: held acks and their unpublished events die with it
    _ping_worker(spawn, counter, "0.05")  # the messages were not acked: they come again
    wait_for(lambda: _ran(counter) == 10, timeout=60, what="the 5 pings run again")
    wait_for(lambda: len(_lifecycle(audit_consumer, ids)) >= 10, timeout=30, what="events")
    time.sleep(0.5)
    records = _lifecycle(audit_consumer, ids)
    pairs = sorted((r["task_id"], r["name"]) for r in records)
    assert pairs == sorted((i, n) for i in ids for n in ("task.started", "task.succeeded"))
    assert all(r["body"]["redelivered"] for r in records)  # the second attempt, said so


def test_a_stopped_worker_publishes_its_held_events_and_acks(
    spawn: Callable[..., Proc], audit_consumer: Path
) -> None:
    counter, worker, ids = _five_pings_run_acks_held(spawn)
    worker.stop(signal.SIGTERM)  # warm shutdown: the batch goes out before the connection
    assert not worker.alive()
    wait_for(lambda: len(_lifecycle(audit_consumer, ids)) == 10, timeout=10, what="events")
    assert not any(r["body"]["redelivered"] for r in _lifecycle(audit_consumer, ids))
    _ping_worker(spawn, counter, "0.05")
    last = _send_pings(1)  # once this one ran, anything redelivered would have run before it
    wait_for(lambda: _ran(counter) >= 6, timeout=30, what="one more ping")
    wait_for(lambda: len(_lifecycle(audit_consumer, last)) == 2, timeout=10, what="its events")
    assert _ran(counter) == 6  # the 5 were acked: none ran twice
