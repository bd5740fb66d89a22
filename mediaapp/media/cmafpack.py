"""A multi-codec ladder packaged once as CMAF, described twice: an HLS master playlist and
a DASH MPD over the same fMP4 segments (:mod:`mediaapp.media.cmaf` encodes them).

HLS: one variant per codec and rung, H.264 first (the start variant, and what an H.264-only
player keeps after dropping the codecs it lacks), every attribute measured from the
segments (``CODECS`` from the configuration records, ``BANDWIDTH`` from the peak segment,
audio included); the audio is one rendition group (``aud``) shared by all. DASH: one video
adaptation set per codec (a player switches rungs within a codec, never across), one audio
set; each representation's ``SegmentTemplate`` points into the variant's own folder.
"""

from __future__ import annotations

import math
import shutil
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediaapp.errors import NotMedia
from mediaapp.media import captions, cmaf, colour, command, hdr, manifests, renditions
from mediaapp.media.cmaf import AUDIO, PLAYLIST, Variant
from mediaapp.media.context import JobContext
from mediaapp.media.outputs import OutputEntry, Work, duration_tolerance, sha256, track_end
from mediaapp.media.probe import ProbeResult

_NS = "urn:mpeg:dash:schema:mpd:2011"
_AUDIO_GROUP = "aud"
#: HLS VIDEO-RANGE of a transfer (RFC 8216bis).
_RANGES = {colour.PQ: "PQ", colour.HLG: "HLG"}


@dataclass(frozen=True)
class Found:
    """A variant as read back: what :func:`cmaf.measure` found, and its colour."""

    measured: cmaf.Measured
    colour: colour.Colour


def _segments(folder: Path) -> tuple[Path, list[tuple[float, Path]]]:
    """A rendition's init segment and (duration, file) of each media segment."""
    playlist = folder / PLAYLIST
    init = renditions.init_segment(playlist)
    if init is None:
        raise NotMedia(f"{folder.name}: not CMAF (no EXT-X-MAP)")
    return init, [(d, folder / f) for d, f in renditions.media_playlist(playlist)]


def _rates(segments: list[tuple[float, Path]]) -> tuple[int, int]:
    """(peak, average) bit/s, rounded up: BANDWIDTH must cover the peak segment."""
    sizes = [(p.stat().st_size, d) for d, p in segments]
    peak = max(math.ceil(s * 8 / d) for s, d in sizes if d > 0)
    total = sum(d for _, d in sizes)
    return peak, math.ceil(sum(s for s, _ in sizes) * 8 / total)


def inspect(root: Path, info: ProbeResult, variants: list[Variant]) -> dict[str, Found]:
    """Each variant read back once: codec, profile, size, rate, and its colour, checked
    against what its mode promises (:func:`hdr.verify`); the master, MPD and entries use it."""
    found = {}
    for v in variants:
        init, segments = _segments(root / v.name)
        tags = hdr.verify(segments[0][1], v.colour_mode(info), info.colour, v.name, init)
        measured = cmaf.measure(init, segments[0][1], tags)
        found[v.name] = Found(measured, tags)
    return found


def master_playlist(
    root: Path, variants: list[Variant], audio: bool, found: dict[str, Found], channels: int = 2
) -> str:
    """The HLS master playlist over the variants (and the shared audio rendition)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    audio_peak = audio_avg = 0
    if audio:
        _, segments = _segments(root / AUDIO)
        audio_peak, audio_avg = _rates(segments)
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{_AUDIO_GROUP}",NAME="audio",'
            f'DEFAULT=YES,AUTOSELECT=YES,CHANNELS="{channels}",URI="{AUDIO}/{PLAYLIST}"'
        )
    for v in variants:
        _, segments = _segments(root / v.name)
        peak, average = _rates(segments)
        m, transfer = found[v.name].measured, found[v.name].colour.transfer
        attrs = [f"BANDWIDTH={peak + audio_peak}", f"AVERAGE-BANDWIDTH={average + audio_avg}",
                 f"RESOLUTION={m.width}x{m.height}",
                 'CODECS="' + ",".join([m.codecs, *[renditions.AAC_LC][:audio]]) + '"',
                 *([f"FRAME-RATE={m.fps:.3f}"] if m.fps else []),
                 f"VIDEO-RANGE={_RANGES.get(transfer or '', 'SDR')}",
                 *([f'AUDIO="{_AUDIO_GROUP}"'] if audio else [])]  # fmt: skip
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), f"{v.name}/{PLAYLIST}"]
    return "\n".join(lines) + "\n"


def _representation(parent: ET.Element, folder: Path, **attrs: str) -> float:
    """A representation whose SegmentTemplate lists the folder's segments (ms timeline);
    where its last segment ends."""
    init, segments = _segments(folder)
    peak, _ = _rates(segments)
    rep = ET.SubElement(parent, f"{{{_NS}}}Representation",
                        {"id": folder.name, "bandwidth": str(peak)} | attrs)  # fmt: skip
    template = ET.SubElement(rep, f"{{{_NS}}}SegmentTemplate", {
        "timescale": "1000", "startNumber": "0",
        "initialization": f"{folder.name}/{init.name}",
        "media": f"{folder.name}/seg_$Number%03d$.m4s"})  # fmt: skip
    timeline = ET.SubElement(template, f"{{{_NS}}}SegmentTimeline")
    edge = 0.0
    for d, _ in segments:  # rounded at each edge, so the ms never drift from the sum
        start, edge = round(edge * 1000), edge + d
        span = str(round(edge * 1000) - start)
        ET.SubElement(timeline, f"{{{_NS}}}S", {"t": str(start), "d": span})
    return edge


def _cicp(adaptation: ET.Element, tags: colour.Colour) -> None:
    """An HDR adaptation set's colour as CICP code points (``SupplementalProperty``, as DASH-IF
    and packagers signal it): what VIDEO-RANGE tells an HLS client, for a DASH one."""
    if not tags.is_hdr:
        return
    for scheme, code in colour.cicp(tags).items():
        if code is not None:
            uri = f"urn:mpeg:mpegB:cicp:{scheme}"
            ET.SubElement(adaptation, f"{{{_NS}}}SupplementalProperty",
                          {"schemeIdUri": uri, "value": str(code)})  # fmt: skip


def write_mpd(
    root: Path, variants: list[Variant], audio: bool, segment_s: int, found: dict[str, Found]
) -> float:
    """The DASH MPD over the same segments; its duration (to the millisecond)."""
    ET.register_namespace("", _NS)
    mpd = ET.Element(f"{{{_NS}}}MPD", {
        "profiles": "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019",
        "type": "static", "minBufferTime": f"PT{segment_s}S"})  # fmt: skip
    period = ET.SubElement(mpd, f"{{{_NS}}}Period", {"id": "0", "start": "PT0S"})
    ends = []
    codecs = list(dict.fromkeys(v.codec for v in variants))
    for n, codec in enumerate(codecs):
        own = [v for v in variants if v.codec == codec]
        sets = ET.SubElement(period, f"{{{_NS}}}AdaptationSet", {
            "id": str(n), "contentType": "video", "mimeType": "video/mp4",
            "segmentAlignment": "true", "startWithSAP": "1",
            "maxWidth": str(max(v.rung.width for v in own)),
            "maxHeight": str(max(v.rung.height for v in own))})  # fmt: skip
        _cicp(sets, found[own[0].name].colour)
        for v in own:
            m = found[v.name].measured
            ends.append(_representation(sets, root / v.name, codecs=m.codecs,
                width=str(m.width), height=str(m.height), sar="1:1",
                **({"frameRate": f"{m.fps:g}"} if m.fps else {})))  # fmt: skip
    if audio:
        sets = ET.SubElement(period, f"{{{_NS}}}AdaptationSet", {
            "id": str(len(codecs)), "contentType": "audio", "mimeType": "audio/mp4",
            "segmentAlignment": "true", "startWithSAP": "1"})  # fmt: skip
        ends.append(_representation(sets, root / AUDIO, codecs=renditions.AAC_LC))
    duration = math.ceil(max(ends) * 1000) / 1000
    mpd.set("mediaPresentationDuration", f"PT{duration:.3f}S")
    tree = ET.ElementTree(mpd)
    ET.indent(tree, "\t")
    tree.write(root / "manifest.mpd", encoding="utf-8", xml_declaration=True)
    return duration


def _check_duration(name: str, segments: list[tuple[float, Path]], info: ProbeResult,
                    segment_s: int) -> float:  # fmt: skip
    """A variant's playlist runs to where the source's video ends (a late start included);
    the audio's from its own first sample (its first fragment's time keeps the offset)."""
    duration = sum(d for d, _ in segments)
    if name == AUDIO and info.audio is not None:
        expected = track_end(info, "audio") - (info.audio.start_s or 0.0)
    else:
        expected = track_end(info, "video")
    if abs(duration - expected) > duration_tolerance(info):
        raise NotMedia(f"{name}: {duration:.3f} s, source {expected:.3f} s")
    if len(segments) != renditions.expected_segments(duration, segment_s):
        raise NotMedia(f"{name}: {len(segments)} segments for {duration:.3f} s")
    return duration


def verify(
    root: Path, ctx: JobContext, variants: list[Variant], found: dict[str, Found]
) -> list[dict[str, Any]]:
    """Check every variant (codec, size, duration, segments; its colour was, by
    :func:`inspect`), the audio, the master playlist and the MPD (ffmpeg's DASH client
    reads every representation); the entries."""
    info, profile = ctx.source, ctx.profile
    listed = renditions.parse_master((root / "master.m3u8").read_text())
    if [v["URI"] for v in listed] != [f"{v.name}/{PLAYLIST}" for v in variants]:
        raise NotMedia(f"master playlist lists {[v['URI'] for v in listed]}")
    entries: list[dict[str, Any]] = []
    for v, attrs in zip(variants, listed, strict=True):
        init, segments = _segments(root / v.name)
        m, tags = found[v.name].measured, found[v.name].colour
        if m.codec != v.codec or not attrs["CODECS"].startswith(m.codecs):
            raise NotMedia(f"{v.name}: {m.codec} ({attrs['CODECS']}), not {v.codec}")
        if (m.width, m.height) != (v.rung.width, v.rung.height):
            raise NotMedia(f"{v.name}: {m.width}x{m.height}, not "
                           f"{v.rung.width}x{v.rung.height}")  # fmt: skip
        duration = _check_duration(v.name, segments, info, profile.segment_s)
        files = [init, *(p for _, p in segments)]
        entries.append({
            "kind": "hls-rendition", "name": f"{v.name}/{PLAYLIST}",
            "size": sum(f.stat().st_size for f in files), "duration_s": round(duration, 6),
            "codec": v.codec, "codecs": attrs["CODECS"], "profile": m.profile,
            "colour": tags.to_dict(), "audio_codec": None, "width": m.width,
            "height": m.height, "bit_rate": int(attrs["AVERAGE-BANDWIDTH"]),
            "peak_bit_rate": int(attrs["BANDWIDTH"]), "segments": len(segments),
            "sha256": sha256(root / v.name / PLAYLIST, *files)})  # fmt: skip
    if info.audio is not None:
        init, segments = _segments(root / AUDIO)
        duration = _check_duration(AUDIO, segments, info, profile.segment_s)
        files = [init, *(p for _, p in segments)]
        entries.append({
            "kind": "hls-audio", "name": f"{AUDIO}/{PLAYLIST}",
            "size": sum(f.stat().st_size for f in files), "duration_s": round(duration, 6),
            "codec": None, "audio_codec": "aac", "width": None, "height": None,
            "bit_rate": None, "segments": len(segments),
            "sha256": sha256(root / AUDIO / PLAYLIST, *files)})  # fmt: skip
    mpd = root / "manifest.mpd"
    command.run([command.ffmpeg_binary(ctx.limits), "-nostdin", "-v", "error", "-i", str(mpd),
                 "-map", "0", "-c", "copy", "-f", "null", "-"], limits=ctx.limits)  # fmt: skip
    top = entries[0]
    for kind, path in (("dash-mpd", mpd), ("hls-master", root / "master.m3u8")):
        entries.insert(0, {
            "kind": kind, "name": path.name, "size": path.stat().st_size,
            "duration_s": top["duration_s"], "codec": None, "audio_codec": None,
            "width": top["width"], "height": top["height"], "bit_rate": None,
            "codecs": list(profile.codecs), "sha256": sha256(path)})  # fmt: skip
    return entries


def package(
    work: Work, ctx: JobContext, root: Path, variants: list[Variant]
) -> list[dict[str, Any]]:
    """Captions, the master playlist and the MPD over the encoded variants, verified; the
    entries (the caption tracks added to the MPD after ffmpeg read it: it refuses .vtt)."""
    tracks, skipped = captions.gather(ctx)
    work.captions = captions.report(tracks, skipped)
    audio = ctx.source.audio is not None
    found = inspect(root, ctx.source, variants)
    channels = renditions.audio_channels(ctx.source)
    master = master_playlist(root, variants, audio, found, channels)
    subtitles = captions.write_hls(root, tracks, root / variants[0].name / PLAYLIST)
    (root / "master.m3u8").write_text(captions.with_subtitles(master, tracks))
    folders = [v.name for v in variants] + ([AUDIO] if audio else [])
    manifests.set_hls_version([root / "master.m3u8", *(root / f / PLAYLIST for f in folders)])
    write_mpd(root, variants, audio, ctx.profile.segment_s, found)
    entries = verify(root, ctx, variants, found)
    subtitles += captions.write_dash(root, tracks)
    if tracks:  # the MPD changed after it was verified: its entry is of the MPD as published
        mpd = root / "manifest.mpd"
        (entry,) = [e for e in entries if e["kind"] == "dash-mpd"]
        entry |= {"size": mpd.stat().st_size, "sha256": sha256(mpd)}
    return entries + subtitles


def _publish(work: Work, ctx: JobContext, built: Path, entries: list[dict[str, Any]]) -> None:
    """Move the package into place in one rename; its entries, named where it now lies."""
    final = ctx.out_dir / ctx.profile.kind
    if final.exists():
        shutil.rmtree(final)
    built.rename(final)
    root = ctx.settings.output_root
    work.outputs += [
        OutputEntry.from_dict({**e, "path": str(final / e["name"]),
                               "relpath": str((final / e["name"]).relative_to(root))})
        for e in entries
    ]  # fmt: skip


def encode_ladder(
    work: Work,
    ctx: JobContext,
    on_progress: command.ProgressCallback | None,
    strategy: str,
    *,
    joined: dict[str, Path] | None = None,
    audio: Path | None = None,
) -> None:
    """The whole ladder in this process: ``single`` decodes once for every variant,
    ``per_rendition`` once per codec, ``chunked`` packages the joined tracks by copy."""
    info, profile = ctx.source, ctx.profile
    tmp = ctx.out_dir / f".{profile.kind}.part-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        variants = cmaf.plan_variants(info, profile)
        if strategy == "chunked":
            assert joined is not None
            for v in variants:
                work.run(cmaf.copy_stream(joined[v.name], tmp / v.name, profile))
            if audio is not None:
                work.run(cmaf.copy_stream(audio, tmp / AUDIO, profile))
        else:
            groups = [variants] if strategy == "single" else [
                [v for v in variants if v.codec == c] for c in profile.codecs]  # fmt: skip
            for n, group in enumerate(groups):
                work.run(cmaf.encode_stream(ctx.src, tmp, info, profile, group, audio=n == 0),
                         duration_s=info.duration_s, on_progress=on_progress)  # fmt: skip
        entries = package(work, ctx, tmp, variants)
        _publish(work, ctx, tmp, entries)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stage_dir(ctx: JobContext) -> Path:
    """Where the variants of a fanned-out job are assembled, codec by codec."""
    return ctx.out_dir / f".{ctx.profile.kind}.stage"


def encode_codec(
    work: Work,
    ctx: JobContext,
    codec: str,
    index: int | None,
    on_progress: command.ProgressCallback | None,
) -> list[str]:
    """Encode one codec's variants (all, or rung ``index``'s) into the stage directory, with
    the audio in the first codec's first step; the names encoded (a redelivered step starts
    them over cleanly)."""
    info, profile = ctx.source, ctx.profile
    variants = [v for v in cmaf.plan_variants(info, profile, codec)
                if index is None or v.rung.index == index]  # fmt: skip
    if not variants:
        raise NotMedia(f"no {codec} variant at rung {index} for this source")
    first = cmaf.plan_variants(info, profile)[0]
    audio = codec == first.codec and index in (None, first.rung.index)
    stage = stage_dir(ctx)
    for name in [v.name for v in variants] + ([AUDIO] if audio else []):
        shutil.rmtree(stage / name, ignore_errors=True)
    work.run(cmaf.encode_stream(ctx.src, stage, info, profile, variants, audio=audio),
             duration_s=info.duration_s, on_progress=on_progress)  # fmt: skip
    return [v.name for v in variants]


def package_stage(work: Work, ctx: JobContext) -> None:
    """Package the staged variants and move them into place."""
    stage = stage_dir(ctx)
    entries = package(work, ctx, stage, cmaf.plan_variants(ctx.source, ctx.profile))
    _publish(work, ctx, stage, entries)
