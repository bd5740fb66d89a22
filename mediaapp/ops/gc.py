"""``mediaapp gc``: prune the chunk cache (size, age), and remove what killed jobs left:
objects under a job prefix that has no manifest (never committed), staged inputs and
scratch outputs, all older than twice the ffmpeg timeout (no live step can be that old)."""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from dataclasses import asdict
from typing import Any

from mediaapp.media.chunking import cache_dir
from mediaapp.settings import Settings
from mediaapp.storage import chunks, open_store, remote_outputs
from mediaapp.storage.publish import MANIFEST


def collect(settings: Settings, *, now: float | None = None) -> dict[str, Any]:
    """Run every cleaner once; what each removed."""
    now = time.time() if now is None else now
    leftover_age = 2 * settings.ffmpeg_timeout_s
    report: dict[str, Any] = {
        "chunk_cache": asdict(chunks.gc(settings, cache_dir(settings), now=now))
    }
    orphans = 0
    if remote_outputs(settings):
        store = open_store(settings.output_url, settings)
        jobs: dict[str, list[Any]] = defaultdict(list)
        for obj in store.list():
            jobs[obj.key.split("/", 1)[0]].append(obj)
        for objs in jobs.values():
            committed = any(o.key.endswith("/" + MANIFEST) for o in objs)
            if not committed and all(now - o.mtime > leftover_age for o in objs):
                store.delete([o.key for o in objs])
                orphans += len(objs)
    report["uncommitted_objects"] = orphans
    stale = 0
    for folder in (settings.scratch_dir / "inputs", settings.scratch_dir / "outputs"):
        for entry in folder.glob("*") if folder.is_dir() else ():
            if now - entry.stat().st_mtime > leftover_age:
                shutil.rmtree(entry, ignore_errors=True)
                stale += 1
    report["scratch_entries"] = stale
    return report
