"""Captions carried through: text subtitles in the source and sidecar files become WebVTT.

Every track is read into plain cues (:class:`Cue`) first: an embedded text track (mov_text,
subrip, webvtt, ass) through ffmpeg's WebVTT encoder, a sidecar ``.srt``/``.vtt`` by our own
bounded parser. From cues we write what each profile needs ourselves (segmented WebVTT with
``X-TIMESTAMP-MAP`` for HLS, one ``.vtt`` beside a ``web`` MP4), so the cue times are ours
to check. Bitmap subtitles (PGS, DVB, DVD) cannot become text without OCR: they are reported
as not converted, never a failure; so is a hostile sidecar (huge, binary, broken timing).
"""

from __future__ import annotations

import io
import itertools
import math
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from os.path import realpath
from pathlib import Path
from typing import Any

import av

from mediaapp import defaults
from mediaapp.errors import InvalidInput, LimitExceeded, MediaError
from mediaapp.media import command, manifests, renditions
from mediaapp.media.context import JobContext
from mediaapp.media.inputs import resolve_input
from mediaapp.media.languages import bcp47, is_tag
from mediaapp.media.outputs import OutputEntry, Work, sha256
from mediaapp.media.probe import StreamInfo
from mediaapp.storage.urls import is_url

#: Subtitle codecs ffmpeg turns into WebVTT text.
TEXT_CODECS = frozenset({"mov_text", "subrip", "srt", "webvtt", "ass", "ssa", "text"})
#: Picture subtitles: converting them needs OCR, which we do not do.
BITMAP_CODECS = frozenset({"hdmv_pgs_subtitle", "dvb_subtitle", "dvd_subtitle", "xsub"})
SIDECAR_SUFFIXES = (".srt", ".vtt")
_TIME = re.compile(r"(?:(\d{1,4}):)?(\d{1,2}):(\d{2})[.,](\d{3})")
_ARROW = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)")
_OVERRIDE = re.compile(r"\{\\[^{}]*\}")  # {\an8} in SubRip text: ffmpeg drops it from a track


@dataclass(frozen=True)
class Cue:
    """One caption: seconds from the start of the source, and its text (WebVTT-safe)."""

    start: float
    end: float
    text: str


@dataclass
class Track:
    """One text track to publish: where it came from, its language and flags, its cues."""

    origin: str  # "stream 2" or the sidecar's name
    language: str | None
    default: bool
    forced: bool
    cues: list[Cue] = field(default_factory=list)


def parse_time(text: str) -> float:
    """Seconds of an SRT/WebVTT timestamp (``01:02:03,456``, ``02:03.456``)."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(f"not a subtitle timestamp: {text[:40]!r}")
    hours, minutes, seconds, millis = (int(g or 0) for g in match.groups())
    if minutes > 59 or seconds > 59:
        raise InvalidInput(f"not a subtitle timestamp: {text[:40]!r}")
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def decode(data: bytes, what: str) -> str:
    """Subtitle bytes as text, or InvalidInput: too large, binary, or not UTF-8."""
    if len(data) > defaults.MAX_SUBTITLE_BYTES:
        raise LimitExceeded(f"{what}: over the limit of {defaults.MAX_SUBTITLE_BYTES} bytes")
    if b"\x00" in data:
        raise InvalidInput(f"{what}: binary data (NUL bytes), not a subtitle file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{what}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def parse_cues(text: str, what: str, duration_s: float | None = None) -> list[Cue]:
    """The cues of SRT or WebVTT text (both are blocks with one ``a --> b`` line), checked:
    times within the source, end after start; the text made safe for WebVTT."""
    cues: list[Cue] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = block.strip("\n").split("\n")
        timing = next((i for i, line in enumerate(lines[:3]) if "-->" in line), None)
        if timing is None:
            continue  # the WEBVTT header, NOTE/STYLE blocks, stray text
        match = _ARROW.match(lines[timing])
        if match is None:
            raise InvalidInput(f"{what}: bad timing line {lines[timing][:60]!r}")
        start, end = parse_time(match.group(1)), parse_time(match.group(2))
        if end <= start:
            raise InvalidInput(f"{what}: a cue ends ({end:.3f} s) before it starts ({start:.3f})")
        if duration_s is not None and start >= duration_s + 1:
            raise InvalidInput(f"{what}: a cue at {start:.3f} s, after the source's end")
        parts = _OVERRIDE.sub("", "\n".join(lines[timing + 1 :])).split("->")
        body = "->".join([p.rstrip("-") for p in parts[:-1]] + parts[-1:]).strip()  # no "-->"
        end = end if duration_s is None else min(end, duration_s)
        if body and end > start:  # one starting in the grace second past the end: dropped
            cues.append(Cue(start, end, body))
        if len(cues) > defaults.MAX_SUBTITLE_CUES:
            raise LimitExceeded(f"{what}: over {defaults.MAX_SUBTITLE_CUES} cues")
    if not cues:
        raise InvalidInput(f"{what}: no cues")
    return sorted(cues, key=lambda c: (c.start, c.end))


def stamp(seconds: float) -> str:
    """A WebVTT timestamp (always with hours)."""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def webvtt(cues: list[Cue], header: str = "") -> str:
    """A WebVTT file of ``cues``; ``header`` goes on the lines after ``WEBVTT``."""
    out = ["WEBVTT" + (f"\n{header}" if header else ""), ""]
    for cue in cues:
        out += [f"{stamp(cue.start)} --> {stamp(cue.end)}", cue.text, ""]
    return "\n".join(out)


def is_text(stream: StreamInfo) -> bool:
    """A subtitle stream ffmpeg can turn into WebVTT."""
    return stream.type == "subtitle" and stream.codec in TEXT_CODECS


def _embedded(ctx: JobContext, stream: StreamInfo) -> Track:
    """An embedded text track as cues: ffmpeg's WebVTT encoder, then our parser."""
    ctx.out_dir.mkdir(parents=True, exist_ok=True)  # the job's own disk, not /tmp's
    with tempfile.TemporaryDirectory(dir=ctx.out_dir) as tmp:
        vtt = Path(tmp) / "track.vtt"
        bound = defaults.MAX_SUBTITLE_BYTES + 1  # a 20 GiB source may carry GiBs of text
        command.run([command.ffmpeg_binary(ctx.limits), "-nostdin", "-v", "error",
                     "-i", str(ctx.src), "-map", f"0:{stream.index}", "-c:s", "webvtt", "-f",
                     "webvtt", "-fs", str(bound), "-y", str(vtt)], limits=ctx.limits)  # fmt: skip
        what = f"subtitle stream {stream.index}"
        with vtt.open("rb") as f:  # within the bound, as a sidecar: one cue may be huge
            data = f.read(bound)
        cues = parse_cues(decode(data, what), what, ctx.source.duration_s)
    return Track(what, stream.language, bool(stream.default), bool(stream.forced), cues)


def _spread(ctx: JobContext, track: Track) -> Track:
    """The track, unless HLS, repeating each cue in every segment it spans, would make it huge."""
    seg, limit = ctx.profile.segment_s, defaults.MAX_SUBTITLE_SEGMENTED_BYTES
    size = sum((len(c.text) + 32) * int((c.end - c.start) // seg + 2) for c in track.cues)
    if ctx.profile.kind == "hls" and size > limit:
        raise LimitExceeded(f"{track.origin}: {size} bytes of HLS segments, over the limit {limit}")
    return track


def sidecars(ctx: JobContext) -> list[tuple[str, str | None]]:
    """The sidecar files given with the job, then those beside a local input with its stem:
    ``clip.en.srt``, ``clip.fr.vtt``, ``clip.srt`` (no language); (name relative to the
    media root, language)."""
    given = [(str(s["path"]), s.get("language")) for s in ctx.subtitles]
    if is_url(ctx.name):
        return given
    src = Path(ctx.source.path)
    rel_dir = Path(ctx.name).parent
    found: list[tuple[str, str | None]] = []
    for path in sorted(src.parent.iterdir()):
        if path.suffix.lower() not in SIDECAR_SUFFIXES or not path.name.startswith(src.stem):
            continue
        middle = path.name[len(src.stem) : -len(path.suffix)]
        if middle and not (middle.startswith(".") and is_tag(middle[1:])):
            continue  # another input's sidecar (clip2.srt), not this one's
        found.append((str(rel_dir / path.name), middle[1:] or None))
    # Only to drop a repeat (realpath: resolve() raises on a symlink loop); confined when read.
    seen = {realpath(ctx.settings.media_root / name) for name, _ in given}
    return given + [f for f in found if realpath(ctx.settings.media_root / f[0]) not in seen]


def _sidecar(ctx: JobContext, name: str, language: str | None) -> Track:
    """A sidecar file, confined to the media root like the input, read within its bounds."""
    path = resolve_input(name, ctx.settings)
    try:
        with path.open("rb") as f:
            data = f.read(defaults.MAX_SUBTITLE_BYTES + 1)
    except OSError as exc:  # another user's 0600 file, an I/O error: the track's, not the job's
        raise InvalidInput(f"{Path(name).name}: cannot be read ({exc.strerror})") from None
    cues = parse_cues(decode(data, Path(name).name), Path(name).name, ctx.source.duration_s)
    return Track(Path(name).name, language, False, False, cues)


def gather(ctx: JobContext) -> tuple[list[Track], list[dict[str, Any]]]:
    """The job's text tracks (embedded first, then sidecars) and what was not converted, with
    the reason: bitmap subtitles, unreadable or hostile tracks. Never raises for a track."""
    tracks: list[Track] = []
    skipped: list[dict[str, Any]] = []
    for stream in ctx.source.streams:
        if stream.type != "subtitle":
            continue
        origin = {"source": f"stream {stream.index}", "codec": stream.codec,
                  "language": stream.language}  # fmt: skip
        if not is_text(stream):
            why = "bitmap subtitles (needs OCR)" if stream.codec in BITMAP_CODECS else "no text"
            skipped.append({**origin, "reason": f"{why}: not converted"})
            continue
        try:
            tracks.append(_spread(ctx, _embedded(ctx, stream)))
        except MediaError as exc:
            skipped.append({**origin, "reason": str(exc)[: defaults.MAX_QUOTE_CHARS]})
    for name, language in sidecars(ctx):
        try:
            tracks.append(_spread(ctx, _sidecar(ctx, name, language)))
        except MediaError as exc:
            reason = str(exc)[: defaults.MAX_QUOTE_CHARS]
            skipped.append({"source": name, "language": language, "reason": reason})
    return tracks, skipped


def segment_cues(cues: list[Cue], bounds: list[tuple[float, float]]) -> list[list[Cue]]:
    """The cues of each segment window: every cue that overlaps it (a cue across a boundary
    is in both segments, as HLS allows: players drop the repeat)."""
    return [[c for c in cues if c.start < end and c.end > start] for start, end in bounds]


def mpegts_offset(first_segment: Path, init: Path | None = None) -> int:
    """The 90 kHz timestamp of the video's first frame in a rung's first segment: what
    ``X-TIMESTAMP-MAP`` maps cue time 0 to (TS or fMP4 segments alike)."""
    data = (init.read_bytes() if init else b"") + first_segment.read_bytes()
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        packets = itertools.islice(container.demux(stream), 64)  # past any B-frame reorder
        first = min((p.pts for p in packets if p.pts is not None), default=0)
        assert stream.time_base is not None
        return round(first * stream.time_base * 90000)


def report(tracks: list[Track], skipped: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's ``captions``: what was converted, and what was not and why."""
    converted = [{"source": t.origin, "language": t.language, "default": t.default,
                  "forced": t.forced, "cues": len(t.cues)} for t in tracks]  # fmt: skip
    return {"tracks": converted, "not_converted": skipped} if tracks or skipped else {}


def write_hls(root: Path, tracks: list[Track], video_playlist: Path) -> list[dict[str, Any]]:
    """One segmented WebVTT rendition per track (``subs<i>/``), its segments on the video's
    own segment boundaries, each with the ``X-TIMESTAMP-MAP`` HLS requires; their entries."""
    if not tracks:
        return []
    segments = renditions.media_playlist(video_playlist)
    init = renditions.init_segment(video_playlist)
    offset = mpegts_offset(video_playlist.parent / segments[0][1], init)
    header = f"X-TIMESTAMP-MAP=MPEGTS:{offset},LOCAL:00:00:00.000"
    edges = list(itertools.accumulate((d for d, _ in segments), initial=0.0))
    bounds = list(itertools.pairwise(edges))
    version = manifests.hls_version([video_playlist.read_text()])  # the package's (fMP4: 6)
    entries = []
    for i, track in enumerate(tracks):
        folder = root / f"subs{i}"
        shutil.rmtree(folder, ignore_errors=True)  # a redelivered packaging step
        folder.mkdir()
        lines = ["#EXTM3U", f"#EXT-X-VERSION:{version}",
                 f"#EXT-X-TARGETDURATION:{math.ceil(max(d for d, _ in segments))}",
                 "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD"]  # fmt: skip
        files = []
        for n, cues in enumerate(segment_cues(track.cues, bounds)):
            files.append(folder / f"seg_{n:03d}.vtt")
            files[-1].write_text(webvtt(cues, header))
            lines += [f"#EXTINF:{segments[n][0]:.6f},", files[-1].name]
        (folder / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n")
        entries.append(
            {"kind": "hls-subtitles", "name": f"subs{i}/index.m3u8",
             "size": sum(f.stat().st_size for f in files), "duration_s": round(edges[-1], 6),
             "codec": "webvtt", "language": bcp47(track.language), "default": track.default,
             "forced": track.forced, "cues": len(track.cues), "segments": len(files),
             "sha256": sha256(folder / "index.m3u8", *files)}
        )  # fmt: skip
    return entries


def media_lines(tracks: list[Track]) -> list[str]:
    """The master playlist's ``EXT-X-MEDIA`` lines of the ``subs`` group: at most one
    DEFAULT=YES (the first track flagged default), names unique within the group."""
    default = next((i for i, t in enumerate(tracks) if t.default), None)
    lines, names = [], set()
    for i, track in enumerate(tracks):
        language = bcp47(track.language)
        name = language or "Subtitles"
        name = name if name not in names else f"{name} {i + 1}"
        names.add(name)
        yes = {True: "YES", False: "NO"}
        lines.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="{name}"'
            + (f',LANGUAGE="{language}"' if language else "")
            + f",DEFAULT={yes[i == default]},AUTOSELECT=YES,FORCED={yes[track.forced]}"
            + f',URI="subs{i}/index.m3u8"'
        )
    return lines


def with_subtitles(master: str, tracks: list[Track]) -> str:
    """A master playlist with the ``subs`` group: its media lines before the first variant,
    and ``SUBTITLES="subs"`` on every variant."""
    if not tracks:
        return master
    out: list[str] = []
    for line in master.splitlines():
        if line.startswith("#EXT-X-STREAM-INF:"):
            if not any(o.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES") for o in out):
                out += media_lines(tracks)
            line += ',SUBTITLES="subs"'
        out.append(line)
    return "\n".join(out) + "\n"


def write_sidecars(tracks: list[Track], out_dir: Path, stem: str) -> list[Path]:
    """One ``.vtt`` per track beside a ``web`` MP4 (``<stem>.<i>.<lang>.vtt``), for
    ``<track src>``: browsers ignore an MP4's own mov_text track."""
    paths = []
    for i, track in enumerate(tracks):
        path = out_dir / f"{stem}.sub{i}.{bcp47(track.language) or 'und'}.vtt"
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_text(webvtt(track.cues))
        tmp.replace(path)
        paths.append(path)
    return paths


def publish_web(work: Work, ctx: JobContext) -> None:
    """A ``web`` job's captions: sidecar ``.vtt`` files in its outputs, the report."""
    tracks, skipped = gather(ctx)
    work.captions = report(tracks, skipped)
    for path, track in zip(write_sidecars(tracks, ctx.out_dir, ctx.stem), tracks, strict=True):
        work.outputs.append(
            OutputEntry.of_files(
                path, "subtitles", ctx.settings.output_root, [path],
                duration_s=max(c.end for c in track.cues), codec="webvtt",
                language=bcp47(track.language), default=track.default, forced=track.forced,
                cues=len(track.cues), source=track.origin,
            )
        )  # fmt: skip


def write_dash(root: Path, tracks: list[Track]) -> list[dict[str, Any]]:
    """One ``subs<i>.vtt`` per track and a text adaptation set for each in the MPD (added
    after the MPD's media was verified: ffmpeg's own DASH client refuses ``.vtt`` URLs)."""
    if not tracks:
        return []
    ns = "urn:mpeg:dash:schema:mpd:2011"
    ET.register_namespace("", ns)
    ET.register_namespace("xsi", "http://www.w3.org/2001/XMLSchema-instance")
    mpd_path = root / "manifest.mpd"
    tree = ET.parse(mpd_path)  # noqa: S314 - our own ffmpeg's output, rewritten by us
    period = tree.getroot().find(f"{{{ns}}}Period")
    assert period is not None
    sets = period.findall(f"{{{ns}}}AdaptationSet")
    next_id = max((int(a.get("id", 0)) for a in sets), default=-1) + 1
    entries = []
    for i, track in enumerate(tracks):
        path = root / f"subs{i}.vtt"
        path.write_text(webvtt(track.cues))
        language = bcp47(track.language)
        attrs = {"id": str(next_id + i), "contentType": "text", "mimeType": "text/vtt"}
        adaptation = ET.SubElement(period, f"{{{ns}}}AdaptationSet",
                                   attrs | ({"lang": language} if language else {}))  # fmt: skip
        role = "forced-subtitle" if track.forced else "main" if track.default else "subtitle"
        ET.SubElement(adaptation, f"{{{ns}}}Role",
                      {"schemeIdUri": "urn:mpeg:dash:role:2011", "value": role})  # fmt: skip
        rep = ET.SubElement(adaptation, f"{{{ns}}}Representation",
                            {"id": f"subs{i}", "bandwidth": "256"})  # fmt: skip
        ET.SubElement(rep, f"{{{ns}}}BaseURL").text = path.name
        entries.append(
            {"kind": "dash-subtitles", "name": path.name, "size": path.stat().st_size,
             "duration_s": max(c.end for c in track.cues), "codec": "webvtt",
             "language": language, "default": track.default, "forced": track.forced,
             "cues": len(track.cues), "sha256": sha256(path)}
        )  # fmt: skip
    ET.indent(tree, "\t")
    tree.write(mpd_path, encoding="utf-8", xml_declaration=True)
    return entries
