"""The HLS master playlist of a ladder, measured from what was written: each rung's first
segment is read back once (CODECS from its configuration record, size, frame rate, colour), and
the same reading serves the checks of :func:`mediaapp.media.packaging.verify_hls`.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from mediaapp.errors import NotMedia
from mediaapp.media import colour, phases, renditions

#: CODECS strings for the H.264 profiles x264 writes (profile_idc + constraint byte).
_AVC_PROFILE = {"Baseline": "4200", "Constrained Baseline": "42e0", "Main": "4d00", "High": "6400"}
#: HLS VIDEO-RANGE of a transfer (RFC 8216bis).
_RANGES = {colour.PQ: "PQ", colour.HLG: "HLG"}


@dataclass(frozen=True)
class RungFacts:
    """What a rung's first segment says, read once for the master playlist and the checks."""

    codecs: str  # the CODECS attribute
    width: int
    height: int
    fps: float | None
    colour: colour.Colour  # its tags and the first frame's HDR side data


@phases.timed("verify")
def read_rung(sample: Path, init: Path | None = None) -> RungFacts:
    """CODECS attribute, size, frame rate and colour of a rung, from its first segment (after
    its initialisation segment ``init``, for fMP4): one open, one decoded frame."""
    source: Any = (
        str(sample) if init is None else io.BytesIO(init.read_bytes() + sample.read_bytes())
    )
    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise NotMedia(f"{sample.name}: no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            if ctx.name == "hevc":
                parts = [renditions.hevc_codec(bytes(ctx.extradata or b""))]
            else:
                prof, level = ctx.profile or "High", ctx.level or 31
                parts = [f"avc1.{_AVC_PROFILE.get(prof, '6400')}{level:02x}"]
            parts += [renditions.AAC_LC] if container.streams.audio else []
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            tags, size = colour.of_stream(stream), (ctx.width or 0, ctx.height or 0)
            frame = next(container.decode(stream), None)
    except av.error.FFmpegError as exc:
        raise NotMedia(f"{sample.name}: cannot be read back ({exc})") from None
    found = tags if frame is None else colour.with_frame(tags, frame)
    fps = round(float(rate), 3) if rate else None
    return RungFacts(",".join(parts), *size, fps, found)


def read_rungs(out_dir: Path, rungs: list[renditions.PlannedRung]) -> dict[str, RungFacts]:
    """:func:`read_rung` of each rung of a ladder in ``out_dir``, by rung name."""
    facts = {}
    for rung in rungs:
        playlist = out_dir / rung.name / "index.m3u8"
        first = playlist.parent / renditions.media_playlist(playlist)[0][1]
        facts[rung.name] = read_rung(first, renditions.init_segment(playlist))
    return facts


def master_playlist(
    out_dir: Path, rungs: list[renditions.PlannedRung], facts: dict[str, RungFacts] | None = None
) -> str:
    """The HLS master playlist, every attribute measured from the rung's own segments
    (``facts``: what :func:`read_rungs` read of them, else read here)."""
    facts = facts if facts is not None else read_rungs(out_dir, rungs)
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rung in rungs:
        rung_dir, read = out_dir / rung.name, facts[rung.name]
        segments = renditions.media_playlist(rung_dir / "index.m3u8")
        sizes = [((rung_dir / f).stat().st_size, d) for d, f in segments]
        # Rounded up: BANDWIDTH must cover the peak segment, not fall a bit short of it.
        peak = max(math.ceil(size * 8 / d) for size, d in sizes if d > 0)
        average = math.ceil(sum(s for s, _ in sizes) * 8 / sum(d for _, d in sizes))
        rate = f",FRAME-RATE={read.fps:.3f}" if read.fps else ""
        if renditions.init_segment(rung_dir / "index.m3u8"):  # HEVC: SDR, PQ or HLG (H.264: SDR)
            rate += f",VIDEO-RANGE={_RANGES.get(read.colour.transfer or '', 'SDR')}"
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},"
            f'RESOLUTION={read.width}x{read.height},CODECS="{read.codecs}"{rate}'
        )
        lines.append(f"{rung.name}/index.m3u8")
    return "\n".join(lines) + "\n"
