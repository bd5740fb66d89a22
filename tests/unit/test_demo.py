"""The demo's worker: the same options through ``mediaapp.ops.worker_main`` as through
``celery -A mediaapp worker`` (tests/e2e/test_embedded.py runs it for real)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from mediaapp.ops import worker_main
from mediaapp.ops.demo import worker_argv


def test_the_demo_worker_has_the_clis_options_without_the_cli() -> None:
    cli, direct = worker_argv(name="demo"), worker_argv(name="demo", cli=False)
    assert cli[1:4] == ["-A", "mediaapp", "worker"]
    assert direct[:3] == [sys.executable, "-m", "mediaapp.ops.worker_main"]
    assert cli[4:-1] == direct[3:-1] == ["-Q", "video_queue", "-c", "1", "-l", "info", "-n"]


def test_worker_main_starts_the_apps_worker_with_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from mediaapp.jobs.app import app

    started: dict[str, Any] = {}

    class FakeWorker:
        exitcode = 0

        def __init__(self, **options: Any) -> None:
            started.update(options)

        def start(self) -> None:
            started["started"] = True

    monkeypatch.setattr(app, "Worker", FakeWorker)
    assert worker_main.main(["-Q", "video_queue,default_queue", "-c", "2", "-n", "w1@box"]) == 0
    assert started == {"hostname": "w1@box", "queues": ["video_queue", "default_queue"],
                       "concurrency": 2, "loglevel": "INFO", "started": True}  # fmt: skip


def test_the_demo_worker_proves_only_the_codecs_of_its_job() -> None:
    from mediaapp.ops.demo import demo_codecs
    from mediaapp.settings import Settings

    settings = Settings.from_env({})
    assert demo_codecs("web", settings) == "h264"
    assert demo_codecs("hls-hdr10", settings) == "hevc"  # its job goes to video_hevc_queue
    assert demo_codecs("hls-multi", settings) == "h264,hevc,av1"  # a step per codec
    assert demo_codecs("no-such-profile", settings) == "h264"  # refused by the worker, typed
