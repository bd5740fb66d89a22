"""Benchmarks: ``python -m bench`` runs the suite, ``python -m bench NAME`` one of them."""

from __future__ import annotations

import json
import resource
import tempfile
from pathlib import Path
from typing import Any

#: Where full runs keep their figures (committed: the README quotes them).
RESULTS = Path(__file__).resolve().parent / "results"


def results_dir(quick: bool) -> Path:
    """Full runs write under bench/results/; smoke runs (--quick) into a scratch folder, so
    CI never overwrites measured figures, while the suite can still build its table."""
    path = Path(tempfile.gettempdir()) / "mediaapp-bench-quick" if quick else RESULTS
    path.mkdir(parents=True, exist_ok=True)
    return path


def cpu_s() -> float:
    """User + system seconds of this process and its waited-for children (ffmpeg): the figure
    other work on the machine hardly moves, where wall-clock time swings with the load."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def write_result(name: str, data: Any, quick: bool) -> Path:
    """Write one benchmark's figures as ``<name>.json``; return the path."""
    path = results_dir(quick) / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


class LineTail:
    """Counts the lines appended to a growing file, reading only what is new (by offset)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = Path(path), 0, 0

    def poll(self) -> int:
        """Read what was appended since the last call; return the lines seen so far."""
        if self.path.exists():
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
            self.offset += len(chunk)
            self.lines += chunk.count(b"\n")
        return self.lines


def job_workspace(
    prefix: str, broker: str, backend: str, *, clip_size: str = "640x360", clip_s: int = 2
) -> tuple[Path, Path, dict[str, str]]:
    """A scratch media root and data dir for a benchmark whose jobs go through RabbitMQ: the
    environment a worker needs (also applied to this process before mediaapp reads its
    settings), the topology declared and video_queue emptied of an earlier run's messages,
    and the clip the jobs transcode. Returns (work folder, clip, worker environment)."""
    import os

    from bench.overhead import make_clip

    work = Path(tempfile.mkdtemp(prefix=f"mediaapp-{prefix}-"))
    media, data = work / "media", work / "data"
    media.mkdir()
    env = {**os.environ, "MEDIAAPP_MEDIA_ROOT": str(media), "MEDIAAPP_DATA_DIR": str(data),
           "MEDIAAPP_BROKER_URL": broker, "MEDIAAPP_RESULT_BACKEND": backend}  # fmt: skip
    os.environ.update(env)
    from mediaapp.jobs import routing
    from mediaapp.jobs.app import app

    with app.connection_for_write() as conn:
        routing.declare_topology(conn)
        routing.VIDEO_QUEUE(conn.default_channel).purge()
    clip = media / f"bench-{clip_size}-{clip_s}s.mp4"
    make_clip(clip, clip_size, clip_s)
    return work, clip, env
