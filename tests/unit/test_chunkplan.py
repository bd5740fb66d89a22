"""The chunking cost model and the keyframe grid of a chunk, without ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaapp.media import chunking, chunkplan
from mediaapp.media.probe import ProbeResult, StreamInfo
from mediaapp.settings import Settings

pytestmark = pytest.mark.unit


def source(
    duration: float, width: int = 1920, height: int = 1080, fps: float = 30.0
) -> ProbeResult:
    video = StreamInfo(index=0, type="video", codec="h264", width=width, height=height, fps=fps)
    return ProbeResult("x.mp4", 1, "mp4", duration, None, [video])


def test_cost_model_chunks_long_sources_over_several_workers_only() -> None:
    auto = Settings(media_root=Path("/"))
    long_hd = source(600)
    plan = chunkplan.plan(long_hd, 2, auto)
    assert plan.chunked and plan.chunks >= 4 and plan.chunked_s < plan.single_s
    assert chunkplan.plan(long_hd, 1, auto).chunked is False  # nobody to share the work with
    short = chunkplan.plan(source(8), 8, auto)
    assert not short.chunked and "fits in one chunk" in short.reason
    tiny = chunkplan.plan(source(25, 320, 240), 2, auto)  # cheap to encode: overhead dominates
    assert not tiny.chunked and "predicted" in tiny.reason
    assert (
        chunkplan.plan(source(600), 2, Settings(media_root=Path("/"), chunking="never")).chunked
        is False
    )
    assert chunkplan.plan(
        source(25, 320, 240), 1, Settings(media_root=Path("/"), chunking="always")
    ).chunked


def test_a_source_whose_video_starts_late_is_not_chunked() -> None:
    late = source(600)
    assert late.video is not None
    late.video.start_s = 0.4  # after its audio: the joined chunks would start at 0
    for chunking_ in ("auto", "always"):
        plan = chunkplan.plan(late, 4, Settings(media_root=Path("/"), chunking=chunking_))
        assert not plan.chunked and "0.400 s late" in plan.reason
    late.video.start_s = 0.021  # AAC priming's worth, under a frame: chunked as before
    assert chunkplan.plan(late, 4, Settings(media_root=Path("/"))).chunked


def test_cost_model_sizes_chunks_for_the_workers_and_whole_segments() -> None:
    auto = Settings(media_root=Path("/"))
    assert chunkplan.plan(source(600), 4, auto).chunk_s == 75  # 600 s / (4 workers x 2 chunks)
    assert chunkplan.plan(source(60), 16, auto).chunk_s == 10  # never below MIN_CHUNK_S
    assert chunkplan.plan(source(7200), 2, auto).chunk_s == 120  # never above MAX_CHUNK_S
    assert chunkplan.plan(source(600), 3, auto, segment_s=4).chunk_s == 100  # 100 = 25 segments
    assert chunkplan.plan(source(600), 3, Settings(media_root=Path("/"), chunk_s=7)).chunk_s == 7
    with pytest.raises(ValueError, match="chunking"):
        Settings(media_root=Path("/"), chunking="sometimes")


def test_keyframe_times_follow_the_source_timeline_across_chunks() -> None:
    chunk = chunking.SourceChunk(1, "src/c00001.mkv", 250, 10.0, 10.0, "x")
    assert chunking.keyframe_times(chunk, 4, 25.0) == [2.0, 6.0]  # 12 s and 16 s of the source
    assert chunking.keyframe_times(chunk, None, 25.0) == []
    first = chunking.SourceChunk(0, "src/c00000.mkv", 250, 0.0, 10.0, "x")
    assert chunking.keyframe_times(first, 4, 25.0) == [0.0, 4.0, 8.0]


def test_a_chunk_off_the_output_grid_starts_on_the_frame_its_first_frame_rounds_to() -> None:
    # Variable rate, 27 fps out: a chunk from 3.2 s (frame 86.4) starts on frame 86, 3.185 s.
    chunk = chunking.SourceChunk(3, "src/c00003.mkv", 84, 3.2, 2.8, "x")
    assert chunking.output_start(chunk, 27.0) == 86 / 27
    assert chunking.keyframe_times(chunk, 2, 27.0) == [0.814815]  # 4 s: frame 108 of 27 fps
    on_grid = chunking.SourceChunk(1, "src/c00001.mkv", 250, 10.0, 10.0, "x")
    assert chunking.output_start(on_grid, 25.0) == 10.0  # constant rate: as it always was
    ntsc = chunking.SourceChunk(1, "src/c00001.mkv", 900, 30.03, 30.03, "x")
    assert chunking.output_start(ntsc, 29.97) == 30.03
