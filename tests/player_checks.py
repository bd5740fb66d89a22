"""Third-party parsers over our manifests: what players' libraries read must parse in others
too (PyPI m3u8, mpegdash, webvtt-py), with the numbers our manifest promises."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any


def parse_with_third_party(manifest: dict[str, Any]) -> None:
    """Parse every playlist, MPD and WebVTT file of a job; check what each declares."""
    for out in manifest["outputs"]:
        path = Path(out["path"])
        if out["kind"] == "hls-master":
            _master(path, manifest)
        elif out["kind"] == "dash-mpd":
            _mpd(path, manifest)
        elif out["kind"] == "vtt":
            _vtt(path, manifest["source"]["duration_s"])


def _master(path: Path, manifest: dict[str, Any]) -> None:
    import m3u8

    master = m3u8.load(str(path))
    assert master.is_variant
    rungs = [o for o in manifest["outputs"] if o["kind"] == "hls-rendition"]
    assert [p.stream_info.resolution for p in master.playlists] == [
        (r["width"], r["height"]) for r in rungs
    ]
    versions = {master.version}
    for variant in master.playlists:
        media = m3u8.load(str(path.parent / variant.uri))
        versions.add(media.version)
        assert media.is_endlist and media.playlist_type == "vod"
        total = sum(s.duration for s in media.segments)
        assert abs(total - manifest["source"]["duration_s"]) < 0.1
        peak = max(
            (path.parent / Path(variant.uri).parent / s.uri).stat().st_size * 8 / s.duration
            for s in media.segments
        )
        assert variant.stream_info.bandwidth >= peak
    assert len(versions) == 1, versions


def _mpd(path: Path, manifest: dict[str, Any]) -> None:
    from mpegdash.parser import MPEGDASHParser

    mpd = MPEGDASHParser.parse(str(path))
    duration = mpd.media_presentation_duration
    assert duration.startswith("PT") and duration.endswith("S")
    assert abs(float(duration[2:-1]) - manifest["source"]["duration_s"]) < 0.05
    sets = mpd.periods[0].adaptation_sets
    video = [s for s in sets if s.content_type == "video"]
    assert len(video) == 1, "one video adaptation set, so players can switch"
    sizes = [(r.width, r.height) for r in video[0].representations]
    reps = [o for o in manifest["outputs"] if o["kind"] == "dash-representation"]
    assert sizes == [(r["width"], r["height"]) for r in reps]
    assert all(r.sar in (None, "1:1") for r in video[0].representations)


def _vtt(path: Path, duration: float) -> None:
    import webvtt

    cues = list(webvtt.read(str(path)))
    assert cues and _seconds(cues[0].start) == 0
    assert abs(_seconds(cues[-1].end) - duration) < 0.002
    assert all(_seconds(a.end) == _seconds(b.start) for a, b in itertools.pairwise(cues))
    assert all("#xywh=" in c.text for c in cues)


def _seconds(stamp: str) -> float:
    """``00:01:02.345`` in seconds (webvtt-py's own ``*_in_seconds`` drop the milliseconds)."""
    h, m, sec = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)
