"""Dispatch: pipelined publisher confirms, the worker's event outbox, and a batch of tasks whose
every message and lifecycle event must reach the audit log."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from amqp.exceptions import MessageNacked

from mediaapp.jobs import events
from mediaapp.jobs.confirms import PipelinedConfirms, confirmed_batch
from mediaapp.ops.audit import read_log

from ..conftest import Proc, worker_cmd


class FakeChannel:
    """Just enough of a py-amqp channel: publishes are counted, confirms are scripted."""

    def __init__(self) -> None:
        self.events: dict[str, set[Any]] = defaultdict(set)
        self.selected = False
        self.sent: list[Any] = []
        self.replies: list[tuple[str, int, bool]] = []  # what the broker answers next
        self.connection = self

    def confirm_select(self) -> None:
        self.selected = True

    def _basic_publish(self, message: Any, **_: Any) -> None:
        self.sent.append(message)

    def drain_events(self, timeout: float | None = None) -> None:
        if not self.replies:
            raise TimeoutError
        kind, tag, multiple = self.replies.pop(0)
        for callback in self.events[kind]:
            callback(tag, multiple)


@pytest.mark.unit
def test_confirms_wait_once_for_many_publishes() -> None:
    channel = FakeChannel()
    confirms = PipelinedConfirms(channel)
    for n in range(5):
        channel.basic_publish(f"m{n}")
    assert channel.selected and len(channel.sent) == 5 and confirms.unconfirmed == {1, 2, 3, 4, 5}
    channel.replies = [("basic_ack", 2, False), ("basic_ack", 5, True)]  # out of order is fine
    confirms.wait(timeout=1)
    assert not confirms.unconfirmed


@pytest.mark.unit
def test_confirms_raise_on_nack_and_on_timeout() -> None:
    channel = FakeChannel()
    confirms = PipelinedConfirms(channel)
    channel.basic_publish("a")
    channel.basic_publish("b")
    channel.replies = [("basic_ack", 1, False), ("basic_nack", 2, False)]
    with pytest.raises(MessageNacked):
        confirms.wait(timeout=1)
    channel.basic_publish("c")
    with pytest.raises(MessageNacked):  # a refusal stays an error for this channel
        confirms.wait(timeout=1)
    quiet = PipelinedConfirms(FakeChannel())
    quiet.channel.basic_publish("d")
    with pytest.raises(TimeoutError):
        quiet.wait(timeout=0.05)


@pytest.mark.unit
def test_unconfirmed_events_are_published_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed flush must not lose events: each pending one goes out again, confirmed."""
    republished: list[tuple[str, str]] = []

    class BrokenOutbox:
        def __init__(self) -> None:
            self.pid = events.os.getpid()
            self.pending = [({"event": "task.started"}, "a"), ({"event": "task.succeeded"}, "b")]

        def flush(self) -> None:
            raise ConnectionError("broker went away")

        def close(self) -> None:
            pass

    def publish_confirmed(app: Any, body: dict[str, Any], message_id: str) -> None:
        republished.append((body["event"], message_id))

    monkeypatch.setattr(events, "_publish_confirmed", publish_confirmed)
    monkeypatch.setattr(events._local, "outbox", BrokenOutbox(), raising=False)
    events.flush_events(app=None)  # type: ignore[arg-type]
    assert republished == [("task.started", "a"), ("task.succeeded", "b")]
    assert events._local.outbox is None  # the next event opens a fresh outbox


@pytest.mark.integration
@pytest.mark.e2e
def test_batch_of_tasks_leaves_every_message_and_event_in_the_audit_log(
    spawn: Callable[..., Proc], audit_consumer: Path
) -> None:
    from mediaapp.jobs.app import app

    cmd, _ = worker_cmd("default_queue", "-c", "2", "-l", "info")
    spawn(cmd, name="worker").wait_for("ready.", timeout=60)
    n = 200
    with confirmed_batch(app) as producer:
        ids = {app.send_task("media.ping", producer=producer).id for _ in range(n)}
    wanted = {"media.ping", "task.started", "task.succeeded"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        records = [r for r in read_log(audit_consumer) if r.get("task_id") in ids]
        if len(records) >= 3 * n:
            break
        time.sleep(0.2)
    time.sleep(0.5)  # let any (wrong) extra copy arrive before counting
    records = [r for r in read_log(audit_consumer) if r.get("task_id") in ids]
    per_name: dict[str, set[str]] = defaultdict(set)
    for record in records:
        per_name[record["name"]].add(record["task_id"])
    assert {name: len(per_name[name]) for name in wanted} == dict.fromkeys(wanted, n)
    assert len(records) == 3 * n and not any(r.get("duplicate") for r in records)
    assert len({r["message_id"] for r in records}) == 3 * n
    # The worker's main process sends many pings' events in one message (eventbatch).
    carriers = {r["message_id"].split(".")[0] for r in records if r["kind"] == "event"}
    assert len(carriers) < n / 2, len(carriers)
