"""The cost model of chunked encoding: whether chunking a job pays off, and how long the chunks."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from mediaapp import defaults
from mediaapp.media.probe import ProbeResult
from mediaapp.settings import Settings


@dataclass(frozen=True)
class ChunkPlan:
    """The cost model's answer: chunk or not, how long the chunks, and why."""

    chunked: bool
    chunk_s: float
    chunks: int
    workers: int
    single_s: float  # predicted encode time in one worker, seconds
    chunked_s: float  # predicted wall time chunked over ``workers``, seconds
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (kept in the manifest)."""
        return asdict(self)


def plan(
    info: ProbeResult,
    workers: int,
    settings: Settings,
    *,
    output_pixels: int | None = None,
    segment_s: int | None = None,
) -> ChunkPlan:
    """Decide whether chunking pays off for this source with ``workers`` free workers.

    The model: one worker encodes ``duration * fps * output_pixels / ENCODE_PIXELS_PER_S``
    seconds (``output_pixels``: per frame, summed over the renditions; the source's size by
    default). Chunked, the same work spreads over the workers in rounds of one chunk each,
    every chunk paying a task overhead, and the job pays a fixed cost (split, audio, concat,
    checks). Chunk when that is at most ``CHUNKING_MIN_GAIN`` of the single encode.
    ``MEDIAAPP_CHUNKING=always|never`` overrides the verdict, not the chunk size; never chunked:
    a source whose video or audio starts late (the join keeps no offset).
    """
    video = info.video
    duration = info.duration_s
    fps = (video.fps if video else None) or 30.0
    if output_pixels is None:
        output_pixels = ((video.width or 0) * (video.height or 0)) if video else 0
    single = duration * fps * output_pixels / defaults.ENCODE_PIXELS_PER_S
    workers = max(1, workers)
    chunk_s = settings.chunk_s  # a configured length is taken as it is
    if not chunk_s:
        chunk_s = duration / (workers * defaults.CHUNKS_PER_WORKER)
        chunk_s = min(max(chunk_s, defaults.MIN_CHUNK_S), defaults.MAX_CHUNK_S)
    if segment_s:  # whole segments per chunk: keyframe cuts line up with segment starts
        chunk_s = math.ceil(chunk_s / segment_s) * segment_s
    chunks = max(1, math.ceil(round(duration, 3) / chunk_s))
    rounds = math.ceil(chunks / workers)
    per_chunk = single * min(chunk_s, duration) / duration if duration else 0.0
    chunked = defaults.CHUNKING_FIXED_S + rounds * (per_chunk + defaults.CHUNK_TASK_OVERHEAD_S)
    late = max((s.start_s or 0.0 for s in (video, info.audio) if s is not None), default=0.0)
    if settings.chunking == "never":
        verdict, reason = False, "MEDIAAPP_CHUNKING=never"
    elif late > 1 / fps:  # the joined chunks and the audio would both start at 0: out of sync
        verdict, reason = False, f"a stream starts {late:.3f} s late: the joins would lose it"
    elif settings.chunking == "always":
        verdict, reason = True, "MEDIAAPP_CHUNKING=always"
    elif video is None:
        verdict, reason = False, "no video to chunk"
    elif workers < 2:
        verdict, reason = False, "one worker: nothing to spread the chunks over"
    elif chunks < 2:
        verdict, reason = False, f"{duration:.1f} s fits in one chunk of {chunk_s:.0f} s"
    elif chunked > defaults.CHUNKING_MIN_GAIN * single:
        verdict, reason = False, f"predicted {chunked:.1f} s chunked vs {single:.1f} s single"
    else:
        verdict, reason = True, f"predicted {chunked:.1f} s chunked vs {single:.1f} s single"
    return ChunkPlan(
        chunked=verdict,
        chunk_s=round(chunk_s, 3),
        chunks=chunks,
        workers=workers,
        single_s=round(single, 2),
        chunked_s=round(chunked, 2),
        reason=reason,
    )
