"""Manifest entries, the atomic writer, the hash, the tolerance and the job context."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mediaapp.errors import InvalidInput
from mediaapp.media.context import JobContext
from mediaapp.media.outputs import (
    OutputEntry,
    atomic_output,
    clear_partials,
    duration_tolerance,
    sha256,
)
from mediaapp.media.probe import ProbeResult, StreamInfo
from mediaapp.media.profiles import get_profile
from mediaapp.settings import Settings

pytestmark = pytest.mark.unit


def test_an_entry_is_flat_json_and_round_trips() -> None:
    extra = {"codecs": "avc1.64001f", "segments": 1}
    entry = OutputEntry("hls-rendition", "/o/j/hls/720p/index.m3u8", "j/hls/720p/index.m3u8",
                        10, 2.0, "ab", codec="h264", extra=extra)  # fmt: skip
    data = entry.to_dict()
    assert data["codecs"] == "avc1.64001f" and "extra" not in data
    assert OutputEntry.from_dict(data) == entry


def test_files_hash_in_order_and_entries_of_files_sum_them(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    assert sha256(a) == hashlib.sha256(b"one").hexdigest()
    assert sha256(a, b) == hashlib.sha256(b"onetwo").hexdigest() != sha256(b, a)
    entry = OutputEntry.of_files(a, "vtt", tmp_path, [a, b], duration_s=1.0, codec="webvtt", cues=3)
    assert (entry.size, entry.relpath, entry.codec, entry.extra) == (6, "a", "webvtt", {"cues": 3})


def test_atomic_output_shows_nothing_until_it_is_whole(tmp_path: Path) -> None:
    final = tmp_path / "out" / "x.mp4"
    with pytest.raises(RuntimeError), atomic_output(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert not final.exists() and list(final.parent.iterdir()) == []
    with atomic_output(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".")
        tmp.write_bytes(b"whole")
    assert final.read_bytes() == b"whole"
    (final.parent / ".x.part-dead0001.mp4").write_bytes(b"left by a killed worker")
    clear_partials(final.parent)
    assert [p.name for p in final.parent.iterdir()] == ["x.mp4"]


def test_the_duration_tolerance_is_one_frame_one_packet_and_rounding() -> None:
    video = StreamInfo(0, "video", "h264", fps=25.0)
    audio = StreamInfo(1, "audio", "aac", sample_rate=48000)
    both = ProbeResult("x", 1, "mp4", 10.0, None, [video, audio])
    assert duration_tolerance(both) == pytest.approx(0.04 + 1024 / 48000 + 0.05)
    silent = ProbeResult("x", 1, "mp4", 10.0, None, [video])
    assert duration_tolerance(silent) == pytest.approx(0.04 + 0.05)


def test_the_context_travels_as_json_and_refuses_a_changed_input(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    clip = media / "clip.mp4"
    clip.write_bytes(b"x" * 100)
    settings = Settings(data_dir=tmp_path / "data", media_root=media)
    video = StreamInfo(0, "video", "h264", width=640, height=360, fps=25.0)
    source = ProbeResult(str(clip.resolve()), 100, "mp4", 2.0, None, [video])
    ctx = JobContext("j1", "clip.mp4", get_profile("web"), source, settings)
    back = JobContext.from_dict(ctx.to_dict(), settings)
    assert back == ctx and back.out_dir == settings.output_root / "j1" and back.stem == "clip"
    clip.write_bytes(b"x" * 101)  # replaced while the job ran
    with pytest.raises(InvalidInput, match="changed while the job ran"):
        JobContext.from_dict(ctx.to_dict(), settings)
