"""A worker's start-up handlers: which capability queues it adds, and when it tests nothing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mediaapp.jobs import capabilities
from mediaapp.jobs.app import create_app
from mediaapp.media import encoders
from mediaapp.media.encoders import Capabilities, Trial
from mediaapp.settings import Settings

pytestmark = pytest.mark.unit

#: What a host with libx264 and an NVENC HEVC encoder, but no AV1 encoder, would find.
FOUND = Capabilities(
    ffmpeg="test",
    trials=(
        Trial("libx264", "h264", False, True),
        Trial("hevc_nvenc", "hevc", True, True),
        Trial("libsvtav1", "av1", False, False, "not listed by -encoders"),
    ),
)


def _worker(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, queues: list[str]) -> Any:
    app = create_app(Settings(data_dir=tmp_path))
    app.amqp.queues.select(queues)
    calls: list[tuple[str, ...]] = []

    def detect(limits: Any, claims: Any = ()) -> Capabilities:
        calls.append(tuple(claims))
        return FOUND.narrow(claims) if claims else FOUND

    monkeypatch.setattr(encoders, "detect", detect)
    return SimpleNamespace(app=app, calls=calls)


def test_a_video_worker_adds_the_queue_of_each_proven_codec(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker(tmp_path, monkeypatch, ["video_queue"])
    capabilities.on_after_setup(sender="w1@host", instance=worker)
    assert capabilities.consumed_queues(worker.app) == ["video_hevc_queue", "video_queue"]
    found = capabilities.capabilities(None)
    assert found["worker"] == "w1@host" and found["codecs"] == ["h264", "hevc"]
    assert found["encoders"]["hevc"] == {"software": [], "hardware": ["hevc_nvenc"]}
    assert found["refused"] == {"libsvtav1": "not listed by -encoders"}
    published: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        capabilities, "publish_event", lambda app, name, **f: published.append((name, f))
    )
    capabilities.on_ready(sender=worker)
    assert published == [("worker.capabilities", found)]


def test_a_worker_without_video_queue_tests_no_encoder(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker(tmp_path, monkeypatch, ["default_queue"])
    capabilities._found.clear()
    capabilities.on_after_setup(sender="w2@host", instance=worker)
    assert worker.calls == [] and capabilities.consumed_queues(worker.app) == ["default_queue"]
    assert capabilities.capabilities(None) == {}
