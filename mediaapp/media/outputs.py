"""Job outputs: one manifest entry type, one atomic writer, one hash, one duration tolerance.

Every output is written under a hidden temporary name and renamed into place when complete,
so nobody ever sees half a file; the manifest is written last and lists only what is whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mediaapp.errors import InvalidInput, NotMedia
from mediaapp.media import command, hardware, phases
from mediaapp.media.probe import ProbeResult, probe
from mediaapp.settings import Settings

#: Job ids become folder names: letters, digits, ``_`` and ``-`` only.
SAFE_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Container rounding on top of one frame and one audio packet (see :func:`duration_tolerance`).
CONTAINER_ROUNDING_S = 0.05


def duration_tolerance(info: ProbeResult) -> float:
    """How far an output's duration may be from its source's: one video frame, one audio
    packet (1024 samples) and container rounding. The one tolerance every check uses."""
    video = info.video
    fps = (video.fps if video else None) or 24.0
    frame = 1 / fps if video else 0.0
    packet = 1024 / (info.audio.sample_rate or 44100) if info.audio else 0.0
    return frame + packet + CONTAINER_ROUNDING_S


def track_end(info: ProbeResult, kind: str) -> float:
    """Where the source's ``video`` or ``audio`` ends on its timeline: the stream's start plus
    its duration (0 without one). Outputs keep a late stream's offset, as ffmpeg does, so a
    playlist timed on one track (an HLS rung on its video) lasts until there."""
    stream = info.video if kind == "video" else info.audio
    if stream is None:
        return 0.0
    if not stream.duration_s:  # Matroska has no stream durations: the file's span
        return info.duration_s
    return (stream.start_s or 0.0) + stream.duration_s


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``final``; fsync and rename it into place only on
    success (a crash leaves a ``.*.part-*`` file that :func:`clear_partials` removes)."""
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


@phases.timed("hash")
def sha256(*paths: Path) -> str:
    """Hex SHA-256 of one file, or of several read in order (a rendition and its segments)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda f=fh: f.read(1 << 20), b""):  # type: ignore[misc]
                digest.update(block)
    return digest.hexdigest()


@dataclass
class OutputEntry:
    """One output in a job's manifest; ``extra`` holds what only some kinds have (the HLS
    ``codecs`` string, segment counts, a chunked file's joins...). Flat in JSON."""

    kind: str
    path: str
    relpath: str
    size: int
    duration_s: float
    sha256: str | None
    codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    bit_rate: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's JSON form: the fields, then the extras beside them."""
        data = asdict(self)
        extra = data.pop("extra")
        return {**data, **extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputEntry:
        """Back from :meth:`to_dict` (a step's outputs travel to the next as JSON)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**{k: v for k, v in data.items() if k in known}, extra=extra)

    @classmethod
    def of_media(cls, path: Path, kind: str, output_root: Path, **extra: Any) -> OutputEntry:
        """The entry of one media file, read back from the file itself (opened, not decoded:
        the encoder just wrote it, and the entry's numbers are what verification compares)."""
        with phases.phase("verify"):  # reading back what the encoder wrote
            info = probe(path, decode_check=False)
        video, audio = info.video, info.audio
        main = video or audio
        return cls(
            kind=kind,
            path=str(path),
            relpath=str(path.relative_to(output_root)),
            size=path.stat().st_size,
            duration_s=info.duration_s,
            sha256=sha256(path),
            codec=main.codec if main else None,
            audio_codec=audio.codec if audio else None,
            width=video.width if video else None,
            height=video.height if video else None,
            bit_rate=info.bit_rate,
            extra=extra,
        )

    @classmethod
    def of_files(
        cls, path: Path, kind: str, output_root: Path, files: list[Path], **fields_: Any
    ) -> OutputEntry:
        """The entry of a playlist or manifest (``path``) over ``files``: their total size and
        one hash over all of them, in order; ``fields_`` fill in the rest."""
        known = {f.name for f in fields(cls)}
        return cls(
            kind=kind,
            path=str(path),
            relpath=str(path.relative_to(output_root)),
            size=sum(f.stat().st_size for f in files),
            sha256=sha256(*files) if files else None,
            **{k: v for k, v in fields_.items() if k in known},
            extra={k: v for k, v in fields_.items() if k not in known},
        )


def verify_video(entry: OutputEntry, source: ProbeResult, expected_height: int) -> None:
    """Fail the job if an output does not hold what we promise."""
    if entry.height != expected_height:
        raise NotMedia(f"output {entry.relpath}: height {entry.height} != {expected_height}")
    if abs(entry.duration_s - source.duration_s) > duration_tolerance(source):
        raise NotMedia(
            f"output {entry.relpath}: duration {entry.duration_s:.3f} s differs from "
            f"source {source.duration_s:.3f} s"
        )


def job_dir(job_id: str, settings: Settings) -> Path:
    """Where one job's outputs and manifest live."""
    if not isinstance(job_id, str) or not SAFE_JOB_ID.fullmatch(job_id):
        raise InvalidInput(f"job id {job_id!r} is not a safe name")
    return settings.output_root / job_id


def discard_outputs(job_id: str, settings: Settings) -> None:
    """Remove everything a job wrote (it was cancelled: no partial results stay behind)."""
    directory = job_dir(job_id, settings)
    if directory.is_dir():
        shutil.rmtree(directory, ignore_errors=True)


#: Entries of a playlist or MPD whose ``size`` and ``sha256`` cover all its files (segments,
#: init segment): the playlist alone never matches them.
SPANNING = ("hls-rendition", "hls-audio", "hls-subtitles", "dash-mpd", "dash-representation")


def load_manifest(job_id: str, settings: Settings) -> dict[str, Any] | None:
    """The manifest of a job whose outputs are all complete on disk, else None (idempotency)."""
    path = job_dir(job_id, settings) / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    for out in manifest.get("outputs", []):
        p = Path(out["path"])
        if not p.is_file():
            return None
        if out["kind"] in SPANNING:  # size and hash are of files the entry does not list
            continue
        if p.stat().st_size != out["size"]:
            return None
        if out.get("sha256") and sha256(p) != out["sha256"]:
            return None  # damaged since: do the work again
    return manifest


@phases.timed("publish")
def write_manifest(manifest: dict[str, Any], settings: Settings) -> Path:
    """Write ``manifest.json`` beside the outputs, atomically, last of all the job's files."""
    final = job_dir(manifest["job_id"], settings) / "manifest.json"
    with atomic_output(final) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return final


class Work:
    """What a job's steps produce: outputs, command lines, ffmpeg seconds."""

    def __init__(self, limits: command.Limits = command.DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.outputs: list[OutputEntry] = []
        self.commands: list[str] = []
        self.encode_s = 0.0
        #: The manifest's ``captions`` (tracks converted, and not), when the source has any.
        self.captions: dict[str, Any] = {}

    def run(self, stream: Any, **kwargs: Any) -> None:
        """Run one ffmpeg command within this job's limits and account for it."""
        result = command.run(stream, limits=self.limits, **kwargs)
        self.commands.append(result.cmd)
        self.encode_s += result.elapsed_s

    def absorb(self, part: dict[str, Any]) -> None:
        """Take in what another step reported (its commands, seconds and outputs)."""
        self.commands += [c for c in (part.get("command"), *part.get("commands", ())) if c]
        self.encode_s += part.get("encode_s") or 0.0
        self.outputs += [OutputEntry.from_dict(o) for o in part.get("outputs", ())]
        hardware.absorb(part)  # which encoder made its renditions, and any fallback

    def report(self, **fields_: Any) -> dict[str, Any]:
        """A step's JSON-ready result: its outputs, commands and ffmpeg seconds."""
        return {
            **fields_,
            "outputs": [o.to_dict() for o in self.outputs],
            "commands": self.commands,
            "encode_s": round(self.encode_s, 3),
            **hardware.recorded(),
        }
