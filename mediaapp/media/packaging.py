"""Packaging: the encoded ladder as HLS or DASH, verified, in a folder that appears complete.

Everything is written under a hidden ``.hls.part-*`` / ``.dash.part-*`` directory, verified,
and renamed into place (``hls/`` or ``dash/``) in one step, so nobody sees half a package.
"""

from __future__ import annotations

import shutil
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from mediaapp.errors import NotMedia
from mediaapp.media import captions, cmafpack, command, hdr, hlsmaster, manifests, renditions
from mediaapp.media.context import JobContext
from mediaapp.media.outputs import OutputEntry, Work, duration_tolerance, sha256, track_end
from mediaapp.media.probe import ProbeResult
from mediaapp.media.profiles import Profile

_MPD = "{urn:mpeg:dash:schema:mpd:2011}"


def _expected_duration(info: ProbeResult) -> float:
    """The end of the source's last track: an MPD lasts until its longest representation ends."""
    return max(track_end(info, "video"), track_end(info, "audio"))


def encode_ladder(
    work: Work,
    ctx: JobContext,
    on_progress: command.ProgressCallback | None,
    strategy: str,
    *,
    joined: dict[str, Path] | None = None,
    audio: Path | None = None,
) -> None:
    """Encode the profile's ladder and append verified manifest entries to ``work``.

    ``strategy="chunked"``: ``joined`` maps each rung's name to its encoded, concatenated
    video and ``audio`` is the job's one audio track; they are packaged without re-encoding.
    """
    if ctx.profile.cmaf:  # several codecs: CMAF for HLS and DASH at once
        cmafpack.encode_ladder(work, ctx, on_progress, strategy, joined=joined, audio=audio)
        return
    src, info, profile, out_dir = ctx.src, ctx.source, ctx.profile, ctx.out_dir
    final = out_dir / profile.kind
    tmp = out_dir / f".{profile.kind}.part-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        rungs = renditions.plan_rungs(info, profile)
        if strategy == "chunked":  # the rungs are encoded already: package them, copy only
            assert joined is not None
            if profile.kind == "hls":
                for rung in rungs:
                    work.run(renditions.hls_copy_stream(joined[rung.name], audio, tmp / rung.name,
                                                    profile))  # fmt: skip
            else:
                paths = [joined[r.name] for r in rungs]
                work.run(renditions.dash_copy_stream(paths, audio, tmp, profile))
        elif profile.kind == "hls":
            if strategy == "per_rendition":
                for rung in rungs:
                    work.run(
                        renditions.hls_rung_stream(src, tmp, info, profile, rung),
                        duration_s=info.duration_s,
                        on_progress=on_progress,
                    )
            else:
                work.run(
                    renditions.hls_single_stream(src, tmp, info, profile),
                    duration_s=info.duration_s,
                    on_progress=on_progress,
                )
        else:
            work.run(
                renditions.dash_stream(src, tmp, info, profile),
                duration_s=info.duration_s,
                on_progress=on_progress,
            )
        if profile.kind == "hls":
            entries = _hls_package(work, ctx, tmp, rungs)
        else:
            manifests.fix_mpd(tmp / "manifest.mpd")
            mode = renditions.colour_mode(info, profile)
            entries = verify_dash(tmp, info, rungs, ctx.limits, mode=mode)
            tracks, skipped = captions.gather(ctx)
            work.captions = captions.report(tracks, skipped)
            entries += captions.write_dash(tmp, tracks)
            if tracks:  # the MPD changed: its entry covers the package as published
                files = sorted(p for p in tmp.iterdir() if p.is_file())
                entries[0] |= {"size": sum(p.stat().st_size for p in files),
                               "sha256": sha256(*files)}  # fmt: skip
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    work.outputs += _published(entries, final, ctx.settings.output_root)


def _published(entries: list[dict[str, Any]], final: Path, root: Path) -> list[OutputEntry]:
    """Entries measured in the temporary directory, named where the package now lies."""
    return [
        OutputEntry.from_dict(
            {
                **e,
                "path": str(final / e["name"]),
                "relpath": str((final / e["name"]).relative_to(root)),
            }
        )
        for e in entries
    ]


def _hls_package(
    work: Work, ctx: JobContext, root: Path, rungs: list[renditions.PlannedRung]
) -> list[dict[str, Any]]:
    """Caption renditions, the master playlist over everything, verified; the entries."""
    tracks, skipped = captions.gather(ctx)
    work.captions = captions.report(tracks, skipped)
    subtitles = captions.write_hls(root, tracks, root / rungs[0].name / "index.m3u8")
    facts = hlsmaster.read_rungs(root, rungs)  # each rung read back once: master and checks
    write_master(root, rungs, tracks, facts)
    return verify_hls(root, ctx.source, ctx.profile, rungs, facts) + subtitles


def write_master(
    root: Path,
    rungs: list[renditions.PlannedRung],
    tracks: list[captions.Track] | None = None,
    facts: dict[str, hlsmaster.RungFacts] | None = None,
) -> None:
    """The master playlist (with the ``subs`` group of ``tracks``), and one EXT-X-VERSION
    across it and the media playlists."""
    master = hlsmaster.master_playlist(root, rungs, facts)
    (root / "master.m3u8").write_text(captions.with_subtitles(master, tracks or []))
    manifests.set_hls_version(
        [root / "master.m3u8", *(root / r.name / "index.m3u8" for r in rungs)]
    )


def stage_dir(out_dir: Path, kind: str) -> Path:
    """The hidden directory where a per-rendition ladder is assembled, rung by rung."""
    return out_dir / f".{kind}.stage"


def encode_rung(
    work: Work, ctx: JobContext, index: int, on_progress: command.ProgressCallback | None
) -> renditions.PlannedRung:
    """Encode one rung into the stage directory (a redelivered rung starts over cleanly)."""
    info, profile = ctx.source, ctx.profile
    rung = renditions.plan_rungs(info, profile)[index]
    stage = stage_dir(ctx.out_dir, profile.kind)
    shutil.rmtree(stage / rung.name, ignore_errors=True)
    work.run(
        renditions.hls_rung_stream(ctx.src, stage, info, profile, rung),
        duration_s=info.duration_s,
        on_progress=on_progress,
    )
    return rung


def package_hls(work: Work, ctx: JobContext) -> None:
    """Master playlist over the staged rungs, verify, and move the package into place."""
    info, profile = ctx.source, ctx.profile
    stage = stage_dir(ctx.out_dir, profile.kind)
    rungs = renditions.plan_rungs(info, profile)
    entries = _hls_package(work, ctx, stage, rungs)
    final = ctx.out_dir / profile.kind
    if final.exists():
        shutil.rmtree(final)
    stage.rename(final)
    work.outputs += _published(entries, final, ctx.settings.output_root)


def verify_hls(
    root: Path,
    info: ProbeResult,
    profile: Profile,
    rungs: list[renditions.PlannedRung],
    facts: dict[str, hlsmaster.RungFacts] | None = None,
) -> list[dict[str, Any]]:
    """Check every rung (duration, height, segment count, colour) and the master playlist;
    ``facts``: each rung's first segment as :func:`hlsmaster.read_rungs` read it."""
    facts = facts if facts is not None else hlsmaster.read_rungs(root, rungs)
    expected = track_end(info, "video")  # the HLS muxer times the segments on the video
    mode = renditions.colour_mode(info, profile)
    entries: list[dict[str, Any]] = []
    variants = renditions.parse_master((root / "master.m3u8").read_text())
    if len(variants) != len(rungs):
        raise NotMedia(f"master playlist lists {len(variants)} variants, expected {len(rungs)}")
    for rung, variant in zip(rungs, variants, strict=True):
        playlist = root / rung.name / "index.m3u8"
        segments = renditions.media_playlist(playlist)
        duration = sum(d for d, _ in segments)
        init = renditions.init_segment(playlist)
        files = [*([init] if init else []), *(playlist.parent / f for _, f in segments)]
        found = hdr.check(facts[rung.name].colour, mode, info.colour, f"rung {rung.name}")
        width, height = (int(v) for v in variant["RESOLUTION"].split("x"))
        if (width, height) != (rung.width, rung.height):
            raise NotMedia(f"rung {rung.name}: {width}x{height}, not {rung.width}x{rung.height}")
        if abs(duration - expected) > duration_tolerance(info):
            raise NotMedia(f"rung {rung.name}: {duration:.3f} s, source {expected:.3f} s")
        frame_s = 1 / renditions.frame_rate(info)
        if len(segments) != renditions.expected_segments(duration, profile.segment_s, frame_s):
            raise NotMedia(f"rung {rung.name}: {len(segments)} segments for {duration:.3f} s")
        size = sum(f.stat().st_size for f in files)
        entries.append(
            {
                "kind": "hls-rendition",
                "name": f"{rung.name}/index.m3u8",
                "size": size,
                "duration_s": round(duration, 6),
                "codec": profile.codec,
                "codecs": variant["CODECS"],
                "colour": found.to_dict(),
                "audio_codec": "aac" if info.audio else None,
                "width": width,
                "height": height,
                "bit_rate": int(variant["AVERAGE-BANDWIDTH"]),
                "peak_bit_rate": int(variant["BANDWIDTH"]),
                "segments": len(segments),
                "sha256": sha256(playlist, *files),
            }
        )
    master = root / "master.m3u8"
    entries.insert(
        0,
        {
            "kind": "hls-master",
            "name": "master.m3u8",
            "size": master.stat().st_size,
            "duration_s": entries[0]["duration_s"],
            "codec": None,
            "audio_codec": None,
            "width": entries[0]["width"],
            "height": entries[0]["height"],
            "bit_rate": None,
            "sha256": sha256(master),
        },
    )
    return entries


def _iso_duration(text: str) -> float:
    """Seconds of an ISO 8601 duration as MPDs write them (PT1H2M3.4S)."""
    text = text.removeprefix("PT")
    seconds = 0.0
    for unit, factor in (("H", 3600), ("M", 60), ("S", 1)):
        if unit in text:
            value, text = text.split(unit, 1)
            seconds += float(value) * factor
    return seconds


def verify_dash(
    root: Path,
    info: ProbeResult,
    rungs: list[renditions.PlannedRung],
    limits: command.Limits = command.DEFAULT_LIMITS,
    *,
    mode: str = hdr.SDR,
) -> list[dict[str, Any]]:
    """Check the MPD: one representation per rung at its size and colour, audio, the
    duration."""
    mpd_path = root / "manifest.mpd"
    mpd = ET.parse(mpd_path).getroot()  # noqa: S314 - our own ffmpeg's output
    duration = _iso_duration(mpd.get("mediaPresentationDuration", "PT0S"))
    if abs(duration - _expected_duration(info)) > duration_tolerance(info):
        raise NotMedia(f"DASH duration {duration:.3f} s, source {_expected_duration(info):.3f} s")
    reps = mpd.findall(f".//{_MPD}Representation")
    video = [r for r in reps if r.get("height")]
    audio = [r for r in reps if not r.get("height")]
    sizes = [(int(r.get("width", 0)), int(r.get("height", 0))) for r in video]
    if sizes != [(r.width, r.height) for r in rungs] or bool(audio) != (info.audio is not None):
        raise NotMedia(f"DASH representations {sizes} (+{len(audio)} audio) do not match")
    if any(r.get("sar", "1:1") != "1:1" for r in video):
        raise NotMedia("DASH representations with non-square pixels")
    files = sorted(p for p in root.iterdir() if p.is_file())
    entries = [
        {
            "kind": "dash-mpd",
            "name": "manifest.mpd",
            "size": sum(p.stat().st_size for p in files),
            "duration_s": round(duration, 6),
            "codec": None,
            "audio_codec": None,
            "width": int(video[0].get("width", 0)),
            "height": sizes[0][1],
            "bit_rate": None,
            "representations": len(reps),
            "sha256": sha256(*files),
        }
    ]
    for rep in video:
        own = [p for p in files if f"-stream{rep.get('id')}" in p.name]
        init = root / f"init-stream{rep.get('id')}.m4s"
        media = [p for p in own if p != init]
        name = f"representation {rep.get('id')}"
        found = hdr.verify(media[0], mode, info.colour, name, init) if media else None
        entries.append(
            {
                "kind": "dash-representation",
                "name": "manifest.mpd",
                "size": sum(p.stat().st_size for p in own),
                "duration_s": round(duration, 6),
                "codec": rep.get("codecs"),
                "audio_codec": None,
                "width": int(rep.get("width", 0)),
                "height": int(rep.get("height", 0)),
                "bit_rate": int(rep.get("bandwidth", 0)),
                "segments": len(own),
                "sha256": sha256(*own) if own else None,
                **({"colour": found.to_dict()} if found else {}),
            }
        )
    # It opens: ffmpeg's own DASH client reads the manifest and decodes every representation.
    command.run([command.ffmpeg_binary(limits), "-nostdin", "-v", "error", "-i", str(mpd_path),
                "-map", "0", "-f", "null", "-"], limits=limits)  # fmt: skip
    return entries
