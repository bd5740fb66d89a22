"""Short tasks' lifecycle events, batched in the worker's main process: what is held, when it
goes out, and that no ack goes before its events are confirmed (the broker side:
tests/integration/test_eventbatch.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mediaapp.jobs import eventbatch, events
from mediaapp.jobs.app import AMQP, create_app
from mediaapp.settings import Settings

pytestmark = pytest.mark.unit


class FakeQoS:
    def __init__(self) -> None:
        self.value = 2
        self.changes: list[int] = []

    def increment_eventually(self, n: int = 1) -> None:
        self.value += n
        self.changes.append(n)

    def decrement_eventually(self, n: int = 1) -> None:
        self.value -= n
        self.changes.append(-n)


class FakeHub:
    def __init__(self) -> None:
        self.timers: list[tuple[float, Any]] = []

    def call_later(self, delay: float, callback: Any) -> None:
        self.timers.append((delay, callback))


def _request(n: int, acks: list[str]) -> Any:
    return SimpleNamespace(
        id=f"t{n}",
        task_name="media.ping",
        kwargs={"payload": n},
        request_dict={"retries": 0},
        delivery_info={"redelivered": False},
        time_start=1000.0 + n,
        worker_pid=4242,
        connection_errors=(),
        _on_ack=lambda *_: acks.append(f"t{n}"),
    )


@pytest.fixture
def batch(monkeypatch: pytest.MonkeyPatch) -> tuple[eventbatch.LifecycleBatch, list[Any]]:
    consumer = SimpleNamespace(qos=FakeQoS(), hub=FakeHub())
    held = eventbatch.LifecycleBatch(app=None, consumer=consumer, wait_s=0.05)  # type: ignore[arg-type]
    published: list[Any] = []
    monkeypatch.setattr(held, "_publish", published.append)
    return held, published


def test_held_acks_go_after_one_message_with_every_tasks_events(
    batch: tuple[eventbatch.LifecycleBatch, list[Any]],
) -> None:
    held, published = batch
    acks: list[str] = []
    for n in range(5):
        held.hold(_request(n, acks))
    assert acks == [] and published == []  # nothing acked before the events are out
    assert [delay for delay, _ in held.consumer.hub.timers] == [0.05]  # one timer a batch
    held.consumer.hub.timers[0][1]()  # the timer fires
    (message,) = published
    bodies = events.unbundle(message)
    assert [(b["event"], b["task_id"]) for b in bodies[:2]] == [
        ("task.started", "t0"),
        ("task.succeeded", "t0"),
    ]
    assert len(bodies) == 10 and {b["pid"] for b in bodies} == {4242}
    assert bodies[0]["ts"] == 1000.0 and bodies[1]["runtime_s"] >= 0
    assert acks == ["t0", "t1", "t2", "t3", "t4"]


def test_the_prefetch_grows_by_doubling_while_acks_are_held_and_shrinks_after(
    batch: tuple[eventbatch.LifecycleBatch, list[Any]],
) -> None:
    held, _ = batch
    acks: list[str] = []
    for n in range(9):
        held.hold(_request(n, acks))
    # A basic.qos round trip per change: 1, 1, 2, 4, 8 for 9 held acks, not one per ack.
    assert held.consumer.qos.changes == [1, 1, 2, 4, 8]
    held.flush()
    assert held.consumer.qos.changes[-1] == -16 and held.consumer.qos.value == 2


def test_a_failed_publish_keeps_the_acks_held_and_tries_again(
    batch: tuple[eventbatch.LifecycleBatch, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    held, published = batch
    acks: list[str] = []
    held.hold(_request(1, acks))

    def refuse(body: Any) -> None:
        raise ConnectionError("broker gone")

    monkeypatch.setattr(held, "_publish", refuse)
    held.consumer.hub.timers[0][1]()  # the batch's timer fires: the publish fails
    assert acks == [] and len(held.held) == 1
    assert held.consumer.hub.timers[-1][0] == eventbatch.RETRY_S
    monkeypatch.setattr(held, "_publish", published.append)
    held.consumer.hub.timers[-1][1]()
    assert acks == ["t1"] and len(events.unbundle(published[0])) == 2


def test_a_full_batch_goes_at_once(batch: tuple[eventbatch.LifecycleBatch, list[Any]]) -> None:
    held, published = batch
    acks: list[str] = []
    for n in range(eventbatch.BATCH_MAX):
        held.hold(_request(n, acks))
    assert len(published) == 1 and len(acks) == eventbatch.BATCH_MAX


def test_a_lost_connection_drops_the_held_acks(
    batch: tuple[eventbatch.LifecycleBatch, list[Any]],
) -> None:
    # Their delivery tags died with the channel: the broker delivers the messages again.
    held, published = batch
    held.hold(_request(1, []))
    held.discard()
    held.flush()
    assert held.held == [] and published == []


def test_only_a_worker_with_an_event_loop_and_confirms_batches(tmp_path: Any) -> None:
    app = create_app(Settings(broker_url="memory://", data_dir=tmp_path))
    app.conf.broker_transport_options = {"confirm_publish": True}
    try:
        off = Settings(broker_url="memory://", data_dir=tmp_path, event_batch_s=0)
        assert eventbatch.start(app, SimpleNamespace(hub=FakeHub()), off) is None
        on = Settings(broker_url="memory://", data_dir=tmp_path)
        assert eventbatch.start(app, SimpleNamespace(hub=None), on) is None  # solo, threads
        assert not events._short_by_main
        assert eventbatch.start(app, SimpleNamespace(hub=FakeHub()), on) is not None
        assert events._short_by_main
    finally:
        eventbatch._current = None
        events.leave_short_tasks_to_main(False)


@pytest.mark.parametrize(("name", "sent"), [("media.ping", False), ("video.transcode", True)])
def test_flowers_sent_event_is_not_made_for_short_tasks(name: str, sent: bool) -> None:
    app = create_app(Settings(broker_url="memory://"))
    app.conf.task_send_sent_event = True
    assert isinstance(app.amqp, AMQP)
    message = app.amqp.create_task_message("id1", name, (), {}, create_sent_event=True)
    assert (message.sent_event is not None) is sent
