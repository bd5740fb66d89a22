"""One probe of the input per job, whatever the strategy: the job's context carries it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mediaapp.jobs.client import submit

from ..conftest import Proc, child_env, worker_cmd
from ..media.test_chunking import clip

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def probes_of(worker: Proc, path: Path) -> int:
    return sum(1 for line in worker.text().splitlines() if line.endswith(f"probe {path}"))


@pytest.mark.parametrize(
    ("strategy", "env"),
    [
        ("chunked", {"MEDIAAPP_CHUNKING": "always", "MEDIAAPP_CHUNK_S": "4"}),
        (
            "per_rendition",
            {"MEDIAAPP_CHUNKING": "never", "MEDIAAPP_LADDER_STRATEGY": "per_rendition"},
        ),
    ],
)
def test_an_hls_job_probes_its_input_once(
    spawn: Callable[..., Proc], clean_queues: None, media_root: Path, strategy: str, env: dict
) -> None:
    name = clip(media_root, "probe-once-12s.mp4", "640x360", 12, gop=25)
    cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    worker = spawn(cmd, child_env(**env), "worker")
    worker.wait_for("ready.", timeout=60)
    manifest = submit(name, "hls").wait(timeout=240)
    assert manifest["strategy"] == strategy
    if strategy == "chunked":
        assert len(manifest["chunking"]["chunks"]) == 3  # three steps that once probed each
    assert probes_of(worker, media_root / name) == 1, worker.text()[-3000:]
