"""Manifests fixed up after ffmpeg wrote them: what players read must be what the media holds.

* ffmpeg's DASH muxer truncates ``mediaPresentationDuration`` to 0.1 s (7.036 s became
  PT6.9S, and a player stops early) and declares each representation's target bit rate as
  ``@bandwidth``; both are recomputed from the segment timelines and the segment files.
* ffmpeg's HLS muxer writes ``#EXT-X-VERSION:6`` into media playlists while the master says
  3; one version everywhere, the lowest the tags in use need (RFC 8216, section 7).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

_MPD = "{urn:mpeg:dash:schema:mpd:2011}"
ET.register_namespace("", _MPD[1:-1])
ET.register_namespace("xsi", "http://www.w3.org/2001/XMLSchema-instance")
ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
_NUMBER = re.compile(r"\$Number%0(\d+)d\$")


@dataclass(frozen=True)
class Timeline:
    """One representation's segments as its SegmentTimeline lists them."""

    rep_id: str
    end_s: float  # where the last segment ends
    segments: list[tuple[Path, float]]  # (file, duration in seconds)


def timelines(mpd_path: Path) -> list[Timeline]:
    """Every representation's segment files and durations, read from the MPD."""
    root = ET.parse(mpd_path).getroot()  # noqa: S314 - our own ffmpeg's output
    found = []
    for rep in root.iter(f"{_MPD}Representation"):
        tpl = rep.find(f"{_MPD}SegmentTemplate")
        if tpl is None:
            continue
        scale = int(tpl.get("timescale", "1"))
        number = int(tpl.get("startNumber", "1"))
        media = tpl.get("media", "").replace("$RepresentationID$", rep.get("id", ""))
        segments, t = [], 0
        for s in tpl.iter(f"{_MPD}S"):
            t = int(s.get("t", t))
            d = int(s.get("d", "0"))
            for _ in range(int(s.get("r", "0")) + 1):
                name = _NUMBER.sub(lambda m, n=number: f"{n:0{m[1]}d}", media)  # type: ignore[misc]
                segments.append((mpd_path.parent / name, d / scale))
                number, t = number + 1, t + d
        found.append(Timeline(rep.get("id", ""), t / scale, segments))
    return found


def peak_bps(segments: list[tuple[Path, float]]) -> int:
    """The highest bit rate of any one segment, rounded up: what a player must be able to
    fetch in real time."""
    return max(math.ceil(p.stat().st_size * 8 / d) for p, d in segments if d > 0)


def fix_mpd(mpd_path: Path) -> float:
    """Merge the video adaptation sets, rewrite the duration (to the millisecond) and the
    bandwidths; return the duration.

    ffmpeg refuses rungs of slightly different aspect ratios (854x480 beside 1280x720, both
    with square pixels) in one adaptation set, so each rung is muxed into its own set and the
    sets are merged here into one, as players need to switch between them.
    """
    lines = {t.rep_id: t for t in timelines(mpd_path)}
    duration = math.ceil(max(t.end_s for t in lines.values()) * 1000) / 1000
    tree = ET.parse(mpd_path)  # noqa: S314 - our own ffmpeg's output
    root = tree.getroot()
    root.set("mediaPresentationDuration", f"PT{duration:.3f}S")
    for period in root.iter(f"{_MPD}Period"):
        sets = [s for s in period.iter(f"{_MPD}AdaptationSet") if s.get("contentType") == "video"]
        for extra in sets[1:]:
            sets[0].extend(extra.findall(f"{_MPD}Representation"))
            period.remove(extra)
        if len(sets) > 1:
            reps = sets[0].findall(f"{_MPD}Representation")
            for key in ("Width", "Height"):
                sets[0].set(f"max{key}", str(max(int(r.get(key.lower(), "0")) for r in reps)))
            for key in ("par", "bitstreamSwitching"):  # no longer one for all
                sets[0].attrib.pop(key, None)
    for rep in root.iter(f"{_MPD}Representation"):
        if rep.get("id") in lines:
            rep.set("bandwidth", str(peak_bps(lines[rep.get("id", "")].segments)))
    tree.write(mpd_path, encoding="utf-8", xml_declaration=True)
    return duration


def hls_version(texts: list[str]) -> int:
    """The lowest EXT-X-VERSION the tags of these playlists need (RFC 8216, section 7)."""
    joined = "\n".join(texts)
    if "#EXT-X-MAP" in joined:
        return 6
    if "#EXT-X-BYTERANGE" in joined or "#EXT-X-I-FRAMES-ONLY" in joined:
        return 4
    return 3  # floating-point EXTINF durations


def set_hls_version(playlists: list[Path]) -> int:
    """Give every playlist (master and media) the same, lowest sufficient version."""
    texts = [p.read_text() for p in playlists]
    version = hls_version(texts)
    for path, text in zip(playlists, texts, strict=True):
        if "#EXT-X-VERSION:" in text:
            text = re.sub(r"#EXT-X-VERSION:\d+", f"#EXT-X-VERSION:{version}", text)
        else:
            text = text.replace("#EXTM3U\n", f"#EXTM3U\n#EXT-X-VERSION:{version}\n", 1)
        path.write_text(text)
    return version
