"""The audit log's duplicate window (a redelivered copy is flagged, memory stays bounded) and
bundles of events (one line per event, the message acked once all are written)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mediaapp import defaults
from mediaapp.jobs.events import build_event, bundle, unbundle
from mediaapp.ops.audit import AuditConsumer, AuditLog, RecentIds, message_records, read_log


def test_recent_ids_forget_the_oldest_first() -> None:
    ids = RecentIds(3)
    for mid in ("a", "b", "c", "b", "d"):
        ids.add(mid)
    assert list(ids) == ["b", "c", "d"] and "a" not in ids and len(ids) == 3


def test_a_redelivered_copy_is_flagged_and_the_window_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "AUDIT_DEDUP_WINDOW", 50)
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append([{"message_id": f"m{i}"} for i in range(200)])
    log.append([{"message_id": "m199"}, {"message_id": "m200"}])  # m199 comes again
    assert len(log.seen_ids) == 50  # however long the log grows
    records = list(read_log(tmp_path / "audit.jsonl"))
    assert [r.get("duplicate", False) for r in records[-2:]] == [True, False]
    log.close()
    reopened = AuditLog(tmp_path / "audit.jsonl")  # a restart reads only the recent ids back
    assert len(reopened.seen_ids) == 50 and "m200" in reopened.seen_ids
    reopened.close()


class _Message:
    """A delivered message as the consumer sees it: its ack is recorded."""

    def __init__(self, body: dict[str, Any], mid: str) -> None:
        self.body, self.headers, self.content_type = body, {}, "application/json"
        self.properties = {"message_id": mid}
        self.delivery_info = {"exchange": "media_exchange", "routing_key": "event.x"}
        self.acks = 0

    def ack(self) -> None:
        self.acks += 1


def _bundle(task_id: str) -> dict[str, Any]:
    return bundle([build_event("task.started", task_id=task_id),
                   build_event("task.succeeded", task_id=task_id)])  # fmt: skip


def test_a_bundle_is_one_line_per_event_each_with_an_id_of_its_own() -> None:
    message = _Message(_bundle("t1"), "m1")
    records = message_records(message.body, message)  # type: ignore[arg-type]
    assert [(r["name"], r["task_id"], r["message_id"]) for r in records] == [
        ("task.started", "t1", "m1.0"), ("task.succeeded", "t1", "m1.1")]  # fmt: skip
    single = build_event("task.failed", task_id="t2")
    assert unbundle(single) == [single] and bundle([single]) is single


def test_a_bundles_lines_are_written_and_acked_together(tmp_path: Path) -> None:
    """A batch never splits a message's lines: none is acked before all of them are on disk."""
    connection = SimpleNamespace(transport=SimpleNamespace(driver_type="memory"))
    consumer = AuditConsumer(connection, tmp_path / "audit.jsonl", batch_lines=3)  # type: ignore[arg-type]
    first, second = _Message(_bundle("t1"), "m1"), _Message(_bundle("t2"), "m2")
    consumer.on_message(first.body, first)  # type: ignore[arg-type]
    assert first.acks == 0 and consumer.written == 0  # 2 lines: under the batch
    consumer.on_message(second.body, second)  # type: ignore[arg-type]
    assert consumer.written == 4 and (first.acks, second.acks) == (1, 1)  # each acked once
    consumer.on_message(second.body, second)  # type: ignore[arg-type]  # redelivered
    consumer.flush()
    records = list(read_log(tmp_path / "audit.jsonl"))
    assert [r.get("duplicate", False) for r in records] == [False] * 4 + [True] * 2
    consumer.audit_log.close()
