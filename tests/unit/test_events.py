"""Event and audit record shaping: what every lifecycle event and audit line holds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mediaapp.errors import NotMedia
from mediaapp.jobs import events
from mediaapp.jobs.events import build_event, error_dict, result_summary
from mediaapp.ops.audit import message_record, rejected_record

pytestmark = pytest.mark.unit


def test_an_event_names_itself_and_its_sender() -> None:
    body = build_event("job.finished", job_id="j", state="SUCCESS")
    assert body["event"] == "job.finished" and body["job_id"] == "j"
    assert {"ts", "hostname", "pid"} <= body.keys()


def test_errors_become_typed_json() -> None:
    assert error_dict(NotMedia("x.mp4: no video"))["code"] == "not_media"
    assert error_dict(OSError("disk")) == {"type": "OSError", "code": "internal", "message": "disk"}
    assert error_dict(None) is None


def test_a_manifest_summary_has_the_figures_metrics_need() -> None:
    manifest = {"source": {"size": 1000, "duration_s": 10.0}, "encode_s": 2.0,
                "outputs": [{"size": 300}, {"size": 200}]}  # fmt: skip
    summary = result_summary(manifest)
    assert (summary["bytes_in"], summary["bytes_out"], summary["speed"]) == (1000, 500, 5.0)
    assert (summary["media_duration_s"], summary["encode_s"]) == (10.0, 2.0)
    assert result_summary({"pong": 1}) == {}
    assert "vmaf_means" not in summary  # nothing measured, nothing said


def test_a_summary_carries_each_scored_renditions_vmaf() -> None:
    outputs = [{"size": 1, "quality": {"vmaf_mean": 91.5}}, {"size": 1},
               {"size": 1, "quality": {"vmaf_mean": 62.25}}]  # fmt: skip
    assert result_summary({"source": {}, "outputs": outputs})["vmaf_means"] == [91.5, 62.25]


def _message(headers: dict[str, Any], body: Any = None, key: str = "video.transcode") -> Any:
    return SimpleNamespace(
        headers=headers,
        properties={"message_id": "m1"},
        delivery_info={"exchange": "media_exchange", "routing_key": key, "redelivered": True},
        content_type="application/json",
        body=body,
    )


def test_a_task_message_is_audited_with_its_job_and_kwargs() -> None:
    kwargs = {"job_id": "j", "name": "clip.mp4", "profile": "web"}
    record = message_record([[], kwargs, {}], _message({"task": "video.transcode", "id": "j"}))
    assert (record["kind"], record["name"], record["task_id"], record["job_id"]) == (
        "task", "video.transcode", "j", "j")  # fmt: skip
    assert record["kwargs"] == kwargs and record["redelivered"] and record["message_id"] == "m1"


def test_an_event_and_a_refused_message_are_audited_too() -> None:
    event = build_event("task.failed", job_id="j", task_id="j-probe")
    record = message_record(event, _message({}, key="event.task.failed"))
    assert (record["kind"], record["name"], record["job_id"]) == ("event", "task.failed", "j")
    raw = b"\x80pickle" * 2000
    refused = rejected_record(_message({"id": "t"}, raw), ValueError("not JSON"))
    assert refused["kind"] == "rejected" and refused["body_size"] == len(raw)
    assert len(refused["body_b64"]) <= 4096 * 4 // 3 + 4  # evidence, capped


def _run_task(
    short: bool, monkeypatch: pytest.MonkeyPatch, by_main: bool = False, fail: bool = False
) -> list[dict[str, Any]]:
    """A task's signals as the worker fires them; what it publishes, message by message."""
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(events, "_send", lambda app, body: sent.append(body))
    monkeypatch.setattr(events, "_short_by_main", by_main)
    request = SimpleNamespace(id="t1", kwargs={}, retries=0, delivery_info={})
    task = SimpleNamespace(name="media.ping", request=request, app=None, short=short)
    events._on_prerun(sender=task, task_id="t1", kwargs={})
    if fail:
        events._on_failure(sender=task, task_id="t1", exception=NotMedia("no"), kwargs={})
    else:
        events._on_success(sender=task, result={"pong": 1})
    events._on_postrun(sender=task, state="FAILURE" if fail else "SUCCESS")
    return sent


def test_a_short_tasks_events_go_out_together_when_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (message,) = _run_task(True, monkeypatch)
    assert message["event"] == events.BUNDLE
    assert [e["event"] for e in events.unbundle(message)] == ["task.started", "task.succeeded"]
    assert getattr(events._local, "held", None) is None and not events._local.task_depth


def test_a_short_task_that_succeeded_leaves_its_events_to_the_main_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # mediaapp.jobs.eventbatch writes them there, many tasks to a message: none from here.
    assert _run_task(True, monkeypatch, by_main=True) == []
    assert getattr(events._local, "started", None) is None


def test_a_short_task_that_failed_publishes_its_own_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (message,) = _run_task(True, monkeypatch, by_main=True, fail=True)
    started, failed = events.unbundle(message)
    assert (started["event"], failed["event"]) == ("task.started", "task.failed")
    assert started["task_id"] == failed["task_id"] == "t1" and started["ts"] <= failed["ts"]
    assert failed["error"]["code"] == NotMedia("x").to_dict()["code"]


def test_another_tasks_events_go_out_as_they_happen(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [m["event"] for m in _run_task(False, monkeypatch)] == ["task.started",
                                                                   "task.succeeded"]  # fmt: skip
