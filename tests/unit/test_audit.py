"""The audit log's duplicate window: a redelivered copy is flagged, and memory stays bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaapp import defaults
from mediaapp.ops.audit import AuditLog, RecentIds, read_log


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
