"""Job outputs: atomic writes, hashing, manifest entries, the manifest itself and its checks."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mediaapp.errors import (
    InvalidInput,
    NotMedia,
)
from mediaapp.media import command
from mediaapp.media.probe import ProbeResult, probe
from mediaapp.settings import Settings

#: Tolerance on output duration against the source: one frame at 24 fps plus one AAC packet.
DURATION_TOLERANCE_S = 1 / 24 + 1024 / 44100


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``final``; rename it into place only on success."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.part-{uuid.uuid4().hex[:8]}{final.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def clear_partials(directory: Path) -> None:
    """Remove temporary files an earlier attempt left when its worker was killed mid-write."""
    if directory.is_dir():
        for stale in directory.glob(".*.part-*"):
            stale.unlink(missing_ok=True)


def discard_outputs(job_id: str, settings: Settings) -> None:
    """Remove everything a job wrote (it was cancelled: no partial results stay behind)."""
    directory = job_dir(job_id, settings)
    if directory.is_dir():
        shutil.rmtree(directory, ignore_errors=True)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_output(path: Path, kind: str, settings: Settings) -> dict[str, Any]:
    """Manifest entry of one output, read back from the file itself (opened, not decoded:
    the encoder just wrote it, and the entry's numbers are what verification compares)."""
    info = probe(path, decode_check=False)
    video, audio = info.video, info.audio
    main = video or audio
    return {
        "kind": kind,
        "path": str(path),
        "relpath": str(path.relative_to(settings.output_root)),
        "size": path.stat().st_size,
        "duration_s": info.duration_s,
        "codec": main.codec if main else None,
        "audio_codec": audio.codec if audio else None,
        "width": video.width if video else None,
        "height": video.height if video else None,
        "bit_rate": info.bit_rate,
        "sha256": sha256(path),
    }


def describe_text(
    path: Path, kind: str, settings: Settings, *, duration_s: float
) -> dict[str, Any]:
    """Manifest entry of a text output (WebVTT): no streams to probe, same fields."""
    return {
        "kind": kind,
        "path": str(path),
        "relpath": str(path.relative_to(settings.output_root)),
        "size": path.stat().st_size,
        "duration_s": duration_s,
        "codec": "webvtt",
        "audio_codec": None,
        "width": None,
        "height": None,
        "bit_rate": None,
        "sha256": sha256(path),
    }


def verify_video(entry: dict[str, Any], source: ProbeResult, expected_height: int) -> None:
    """Fail the job if an output does not hold what we promise."""
    if entry["height"] != expected_height:
        raise NotMedia(f"output {entry['relpath']}: height {entry['height']} != {expected_height}")
    if abs(entry["duration_s"] - source.duration_s) > DURATION_TOLERANCE_S + 0.05:
        raise NotMedia(
            f"output {entry['relpath']}: duration {entry['duration_s']:.3f} s differs from "
            f"source {source.duration_s:.3f} s"
        )


def job_dir(job_id: str, settings: Settings) -> Path:
    """Where one job's outputs and manifest live."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", job_id):
        raise InvalidInput(f"job id {job_id!r} is not a safe name")
    return settings.output_root / job_id


def load_manifest(job_id: str, settings: Settings) -> dict[str, Any] | None:
    """The manifest of a job whose outputs are all complete on disk, else None (idempotency)."""
    path = job_dir(job_id, settings) / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    for out in manifest.get("outputs", []):
        p = Path(out["path"])
        if not p.is_file() or p.stat().st_size != out["size"]:
            return None
        if out.get("sha256") and sha256(p) != out["sha256"]:
            return None  # damaged since: do the work again
    return manifest


def write_manifest(manifest: dict[str, Any], settings: Settings) -> Path:
    """Write ``manifest.json`` beside the outputs, atomically."""
    final = job_dir(manifest["job_id"], settings) / "manifest.json"
    with atomic_output(final) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return final


class Work:
    """What a job's steps produce: outputs, command lines, ffmpeg seconds."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.commands: list[str] = []
        self.encode_s = 0.0

    def run(self, stream: Any, **kwargs: Any) -> None:
        result = command.run(stream, **kwargs)
        self.commands.append(result.cmd)
        self.encode_s += result.elapsed_s
