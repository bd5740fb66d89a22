"""Captions through the broker: ``submit(..., subtitles=[...])`` reaches the worker, and a
per-rendition job's packaging step (a later task, its context from the message) still has it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import m3u8
import pytest

from mediaapp.jobs.client import submit

from ..conftest import Proc, child_env, worker_cmd
from ..media_sources import generate

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SRT = "1\n00:00:00,500 --> 00:00:01,500\nHola\n\n2\n00:00:02,000 --> 00:00:02,800\nAdios\n"


def test_sidecar_given_with_the_job_becomes_an_hls_subtitles_rendition(
    spawn: Callable[..., Proc], clean_queues: None, media_root: Path
) -> None:
    name = generate(media_root, "captions-e2e.mp4", size="320x240", seconds=3, rate=25)
    (media_root / "captions-e2e-subs").mkdir(exist_ok=True)
    (media_root / "captions-e2e-subs" / "spanish.srt").write_text(SRT)
    env = {"MEDIAAPP_CHUNKING": "never", "MEDIAAPP_LADDER_STRATEGY": "per_rendition"}
    cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    worker = spawn(cmd, child_env(**env), "worker")
    worker.wait_for("ready.", timeout=60)
    given = [{"path": "captions-e2e-subs/spanish.srt", "language": "es"}]
    manifest = submit(name, "hls", subtitles=given).wait(timeout=240)
    assert manifest["strategy"] == "per_rendition"
    assert [(t["source"], t["language"], t["cues"]) for t in manifest["captions"]["tracks"]] == [
        ("spanish.srt", "es", 2)
    ]
    (master_entry,) = [o for o in manifest["outputs"] if o["kind"] == "hls-master"]
    master = m3u8.load(master_entry["path"])
    assert [(m.type, m.language) for m in master.media] == [("SUBTITLES", "es")]
