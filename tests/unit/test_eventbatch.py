"""Short tasks' lifecycle events, batched in the worker's main process: what is held, when it
goes out, and that no ack goes before its events are confirmed (the broker side:
tests/integration/test_eventbatch.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mediaapp.jobs import eventbatch, events
from mediaapp.jobs.app import create_app
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


class FakePublisher:
    """What LoopPublisher does, without a broker: numbered sends, confirms when told."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, Any, str]] = []
        self.confirmed_up_to = 0
        self.nacked = 0
        self.refuse = False
        self.on_readable: Any = None

    def send(self, body: Any, message_id: str, hub: Any, on_readable: Any, **_: Any) -> int:
        if self.refuse:
            raise ConnectionError("broker gone")
        self.on_readable = on_readable
        self.sent.append((len(self.sent) + 1, body, message_id))
        return len(self.sent)

    def confirm_all(self) -> None:
        self.confirmed_up_to = len(self.sent)
        self.on_readable()  # the event loop saw the confirm frame

    def poll(self) -> None:
        pass

    def confirmed(self, tag: int) -> bool:
        return tag <= self.confirmed_up_to

    def wait(self) -> None:
        self.confirmed_up_to = len(self.sent)

    def close(self) -> None:
        self.sent, self.confirmed_up_to = [], 0


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
        _on_ack=lambda *_: acks.append(f"t{n}"),  # Celery's: on the event loop's next turn
        message=SimpleNamespace(ack_log_error=lambda *_: acks.append(f"t{n} at once")),
    )


@pytest.fixture
def batch() -> tuple[eventbatch.LifecycleBatch, FakePublisher]:
    consumer = SimpleNamespace(qos=FakeQoS(), hub=FakeHub())
    held = eventbatch.LifecycleBatch(app=None, consumer=consumer, wait_s=0.05)  # type: ignore[arg-type]
    held.publisher = FakePublisher()  # type: ignore[assignment]
    return held, held.publisher  # type: ignore[return-value]


Held = tuple[eventbatch.LifecycleBatch, FakePublisher]


def test_held_acks_go_once_one_message_with_every_tasks_events_is_confirmed(
    batch: Held,
) -> None:
    held, publisher = batch
    acks: list[str] = []
    for n in range(5):
        held.hold(_request(n, acks))
    assert acks == [] and publisher.sent == []  # nothing goes before the timer
    assert [delay for delay, _ in held.consumer.hub.timers] == [0.05]  # one timer a batch
    held.consumer.hub.timers[0][1]()  # the timer fires: published, not yet confirmed
    ((_, message, _),) = publisher.sent
    assert acks == []  # no ack before the broker has the events
    bodies = events.unbundle(message)
    assert [(b["event"], b["task_id"]) for b in bodies[:2]] == [
        ("task.started", "t0"),
        ("task.succeeded", "t0"),
    ]
    assert len(bodies) == 10 and {b["pid"] for b in bodies} == {4242}
    assert bodies[0]["ts"] == 1000.0 and bodies[1]["runtime_s"] >= 0
    publisher.confirm_all()
    assert acks == ["t0", "t1", "t2", "t3", "t4"] and held.in_flight == []


def test_batches_are_acked_in_order_each_on_its_own_confirm(batch: Held) -> None:
    held, publisher = batch
    acks: list[str] = []
    held.hold(_request(1, acks))
    held.flush()
    held.hold(_request(2, acks))
    held.flush()
    assert [tag for tag, _, _ in publisher.sent] == [1, 2]
    publisher.confirmed_up_to = 1
    publisher.on_readable()
    assert acks == ["t1"]
    publisher.confirm_all()
    assert acks == ["t1", "t2"]


def test_the_prefetch_grows_by_doubling_while_acks_are_held_and_shrinks_after(
    batch: Held,
) -> None:
    held, publisher = batch
    for n in range(9):
        held.hold(_request(n, []))
    # A basic.qos round trip per change: 1, 1, 2, 4, 8 for 9 held acks, not one per ack.
    assert held.consumer.qos.changes == [1, 1, 2, 4, 8]
    held.flush()
    assert held.consumer.qos.value == 18  # still held: published, not confirmed
    publisher.confirm_all()
    assert held.consumer.qos.changes[-1] == -16 and held.consumer.qos.value == 2


def test_a_failed_publish_keeps_the_acks_held_and_publishes_again(batch: Held) -> None:
    held, publisher = batch
    acks: list[str] = []
    held.hold(_request(1, acks))
    publisher.refuse = True
    held.consumer.hub.timers[0][1]()  # the batch's timer fires: the publish fails
    assert acks == [] and len(held.in_flight) == 1
    assert held.consumer.hub.timers[-1][0] == eventbatch.RETRY_S
    publisher.refuse = False
    held.consumer.hub.timers[-1][1]()
    publisher.confirm_all()
    assert acks == ["t1"] and len(events.unbundle(publisher.sent[0][1])) == 2


def test_a_refused_batch_goes_again_under_the_same_message_id(batch: Held) -> None:
    held, publisher = batch
    acks: list[str] = []
    held.hold(_request(1, acks))
    held.flush()
    first_id = publisher.sent[0][2]
    publisher.nacked = 1
    publisher.on_readable()  # a basic.nack: the publisher is reset, the acks stay held
    assert acks == [] and publisher.sent == []
    publisher.nacked = 0
    (flush,) = [cb for _, cb in held.consumer.hub.timers if cb == held._flush_later]
    flush()
    assert publisher.sent[0][2] == first_id  # the audit log flags a copy that did arrive
    publisher.confirm_all()
    assert acks == ["t1"]


def test_a_full_batch_goes_at_once(batch: Held) -> None:
    held, publisher = batch
    for n in range(eventbatch.BATCH_MAX):
        held.hold(_request(n, []))
    assert len(publisher.sent) == 1 and held.filling.requests == []


def test_a_stopping_worker_waits_for_its_last_confirm(batch: Held) -> None:
    held, _ = batch
    acks: list[str] = []
    held.hold(_request(1, acks))
    held.close()  # the loop turns no more: acked at once
    assert acks == ["t1 at once"]


def test_a_lost_connection_drops_the_held_acks(batch: Held) -> None:
    # Their delivery tags died with the channel: the broker delivers the messages again.
    held, publisher = batch
    held.hold(_request(1, []))
    held.discard()
    held.flush()
    assert held.in_flight == [] and publisher.sent == []


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
