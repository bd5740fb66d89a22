"""Captions carried through (issue 16): an embedded mov_text track and a sidecar .srt become
an HLS SUBTITLES group of segmented WebVTT and sidecar .vtt files beside a web MP4, with the
source's cue times; bitmap subtitles and hostile sidecars are reported, never a failure.
Media tier: real ffmpeg on a 3 s 320x240 clip, no broker."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import m3u8
import pytest

from mediaapp import defaults
from mediaapp.errors import InputOutsideRoot, InvalidInput, LimitExceeded
from mediaapp.media import captions, command, steps
from mediaapp.media.context import JobContext
from mediaapp.media.outputs import sha256
from mediaapp.media.probe import StreamInfo
from mediaapp.settings import Settings

from ..media_sources import generate

pytestmark = pytest.mark.media
FRAME_S = 1 / 25
EN_SRT = (
    "1\n00:00:00,500 --> 00:00:01,250\nHello <i>there</i>\n\n"
    "2\n00:00:02,000 --> 00:00:02,900\nSecond line\nand more\n\n"
    "3\n00:00:03,500 --> 00:00:04,500\nAcross a boundary\n\n"
)
FR_SRT = "1\n00:00:00,200 --> 00:00:04,800\nBonjour\n\n2\n00:00:04,500 --> 00:00:05,500\nFin\n"


def cue_times(text: str) -> list[tuple[float, float]]:
    return [(c.start, c.end) for c in captions.parse_cues(text, "test")]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A media root of its own: a 6 s clip with an English mov_text track (default) and a
    French sidecar (a 4 s and a 2 s segment in the hls profile)."""
    root = tmp_path_factory.mktemp("media")
    generate(root, "plain.mp4", size="320x240", seconds=6, rate=25)
    (root / "en.srt").write_text(EN_SRT)
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(root / "plain.mp4"),
                 "-i", str(root / "en.srt"), "-map", "0", "-map", "1", "-c", "copy",
                 "-c:s", "mov_text", "-metadata:s:s:0", "language=eng", "-disposition:s:0",
                 "default", "-y", str(root / "clip.mp4")])  # fmt: skip
    (root / "clip.fr.srt").write_text(FR_SRT)
    return Settings(data_dir=root.parent / "data", media_root=root, ffmpeg_threads=1)


def test_probe_lists_the_subtitle_stream(settings: Settings) -> None:
    ctx = JobContext.open("c0", "clip.mp4", "web", settings)
    (sub,) = [s for s in ctx.source.streams if s.type == "subtitle"]
    assert (sub.codec, sub.language, sub.default, sub.forced) == ("mov_text", "eng", True, False)
    assert captions.is_text(sub)


def test_hls_gets_a_subtitles_group_with_the_source_cues(settings: Settings) -> None:
    manifest = steps.run("c1", "clip.mp4", "hls", settings)
    root = settings.output_root / "c1" / "hls"
    master = m3u8.load(str(root / "master.m3u8"))
    subs = [m for m in master.media if m.type == "SUBTITLES"]
    assert [(m.language, m.default, m.forced, m.group_id) for m in subs] == [
        ("en", "YES", "NO", "subs"),
        ("fr", "NO", "NO", "subs"),
    ]
    assert master.playlists and all(p.stream_info.subtitles == "subs" for p in master.playlists)
    video = m3u8.load(str(root / master.playlists[0].uri))
    for media, srt in zip(subs, (EN_SRT, FR_SRT), strict=True):
        playlist = m3u8.load(str(root / media.uri))
        # Segments on the video's boundaries, so a player fetches them in step.
        assert [s.duration for s in playlist.segments] == [s.duration for s in video.segments]
        seen: set[tuple[float, float]] = set()
        for segment in playlist.segments:
            text = (root / Path(media.uri).parent / segment.uri).read_text()
            assert re.search(r"^X-TIMESTAMP-MAP=MPEGTS:\d+,LOCAL:00:00:00.000$", text, re.M)
            if "-->" in text:
                seen |= set(cue_times(text))
        expected = cue_times(srt)
        assert len(seen) == len(expected)
        for (start, end), (want_start, want_end) in zip(sorted(seen), expected, strict=True):
            assert abs(start - want_start) <= FRAME_S and abs(end - want_end) <= FRAME_S
    tracks = manifest["captions"]["tracks"]
    assert [(t["source"], t["language"], t["cues"]) for t in tracks] == [
        ("subtitle stream 2", "eng", 3),
        ("clip.fr.srt", "fr", 2),
    ]
    entries = [o for o in manifest["outputs"] if o["kind"] == "hls-subtitles"]
    assert [e["segments"] for e in entries] == [2, 2]


def test_timestamp_map_is_the_first_video_timestamp(settings: Settings) -> None:
    """Our TS segments start at PTS 0 (no mux delay); the map says so, not the usual 900000
    copied from elsewhere, which would shift every cue by 10 s."""
    root = settings.output_root / "c1" / "hls"
    if not root.exists():
        steps.run("c1", "clip.mp4", "hls", settings)
    first_seg = next(root.glob("subs0/seg_000.vtt")).read_text()
    offset = int(re.search(r"MPEGTS:(\d+)", first_seg).group(1))  # type: ignore[union-attr]
    assert offset == captions.mpegts_offset(next(root.glob("*/seg_000.ts")))
    assert offset < 90000 * FRAME_S * 4  # within the first few frames of 0


def test_web_gets_sidecar_vtt_files(settings: Settings) -> None:
    manifest = steps.run("c2", "clip.mp4", "web", settings)
    subs = [o for o in manifest["outputs"] if o["kind"] == "subtitles"]
    assert [(Path(o["path"]).name, o["language"]) for o in subs] == [
        ("clip.sub0.en.vtt", "en"),
        ("clip.sub1.fr.vtt", "fr"),
    ]
    for entry, srt in zip(subs, (EN_SRT, FR_SRT), strict=True):
        text = Path(entry["path"]).read_text()
        assert text.startswith("WEBVTT\n")
        got, want = cue_times(text), cue_times(srt)
        assert len(got) == len(want)
        for (start, end), (want_start, want_end) in zip(got, want, strict=True):
            assert abs(start - want_start) <= FRAME_S and abs(end - want_end) <= FRAME_S


def test_dash_gets_a_text_adaptation_set_per_track(settings: Settings) -> None:
    manifest = steps.run("c5", "clip.mp4", "dash", settings)
    root = settings.output_root / "c5" / "dash"
    mpd = ET.parse(root / "manifest.mpd").getroot()
    ns = "{urn:mpeg:dash:schema:mpd:2011}"
    text = [a for a in mpd.iter(f"{ns}AdaptationSet") if a.get("contentType") == "text"]
    assert [(a.get("mimeType"), a.get("lang")) for a in text] == [
        ("text/vtt", "en"),
        ("text/vtt", "fr"),
    ]
    ids = [a.get("id") for a in mpd.iter(f"{ns}AdaptationSet")]
    assert len(ids) == len(set(ids))
    for adaptation, srt in zip(text, (EN_SRT, FR_SRT), strict=True):
        url = adaptation.find(f"{ns}Representation/{ns}BaseURL")
        assert url is not None and url.text
        assert len(cue_times((root / url.text).read_text())) == len(cue_times(srt))
    files = sorted(p for p in root.iterdir() if p.is_file())
    (mpd_entry,) = [o for o in manifest["outputs"] if o["kind"] == "dash-mpd"]
    assert mpd_entry["size"] == sum(p.stat().st_size for p in files)  # the MPD as published


def test_cmaf_package_entry_is_of_the_mpd_with_its_text_sets(settings: Settings) -> None:
    """A multi-codec ladder's MPD gets its text sets after it was verified: the manifest's
    entry (size, sha256) must be of the MPD as published, not the one before."""
    manifest = steps.run("c11", "clip.mp4", "hls-multi", settings)
    (entry,) = [o for o in manifest["outputs"] if o["kind"] == "dash-mpd"]
    mpd = Path(entry["path"])
    assert b'contentType="text"' in mpd.read_bytes()
    assert (entry["size"], entry["sha256"]) == (mpd.stat().st_size, sha256(mpd))


def test_subtitle_playlists_share_the_packages_hls_version(settings: Settings) -> None:
    """fMP4 rungs need version 6 (EXT-X-MAP); every playlist of a package says the same one,
    the subtitle playlists too (they said 3)."""
    manifest = steps.run("c11", "clip.mp4", "hls-multi", settings)
    (entry,) = [o for o in manifest["outputs"] if o["kind"] == "hls-master"]
    master = Path(entry["path"])
    playlists = [master, *master.parent.glob("*/index.m3u8")]
    assert "subs0" in {p.parent.name for p in playlists}
    versions = {re.findall(r"#EXT-X-VERSION:(\d+)", p.read_text())[0] for p in playlists}
    assert versions == {"6"}


def test_subtitles_given_with_the_job_travel_in_its_context(settings: Settings) -> None:
    """``submit(..., subtitles=[...])``: a sidecar anywhere in the media root, its language
    given; carried to later steps in the context (no second check needed there)."""
    (settings.media_root / "subs").mkdir(exist_ok=True)
    (settings.media_root / "subs" / "any-name.srt").write_text(FR_SRT)
    given = [{"path": "subs/any-name.srt", "language": "fr"}]
    ctx = JobContext.open("c6", "plain.mp4", "web", settings, given)
    assert JobContext.from_dict(ctx.to_dict(), settings).subtitles == tuple(given)
    manifest = steps.run("c6", "plain.mp4", "web", settings, subtitles=given)
    (entry,) = [o for o in manifest["outputs"] if o["kind"] == "subtitles"]
    assert (Path(entry["path"]).name, entry["source"]) == ("plain.sub0.fr.vtt", "any-name.srt")
    assert len(cue_times(Path(entry["path"]).read_text())) == len(cue_times(FR_SRT))


def test_any_language_keeps_its_tag_in_the_package(settings: Settings) -> None:
    """A Danish track (ISO 639-2 ``dan`` in the MP4) is ``da``; a sidecar given as
    ``zh-hant-tw`` (script and region: a valid BCP 47 tag) is accepted and ``zh-Hant-TW``."""
    root = settings.media_root
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(root / "plain.mp4"),
                 "-i", str(root / "en.srt"), "-map", "0", "-map", "1", "-c", "copy",
                 "-c:s", "mov_text", "-metadata:s:s:0", "language=dan", "-y",
                 str(root / "danish.mp4")])  # fmt: skip
    (root / "subs").mkdir(exist_ok=True)
    (root / "subs" / "zh.srt").write_text(FR_SRT)
    given = [{"path": "subs/zh.srt", "language": "zh-hant-tw"}]
    steps.run("c-lang", "danish.mp4", "hls", settings, subtitles=given)
    master = m3u8.load(str(settings.output_root / "c-lang" / "hls" / "master.m3u8"))
    assert [m.language for m in master.media if m.type == "SUBTITLES"] == ["da", "zh-Hant-TW"]


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ([{"path": "../outside.srt", "language": "en"}], InputOutsideRoot),
        ([{"path": "plain.mp4", "language": "en"}], InvalidInput),  # not .srt/.vtt
        ([{"path": "clip.fr.srt", "language": 'en",URI="x'}], InvalidInput),
        (["clip.fr.srt"], InvalidInput),
    ],
    ids=["outside-root", "not-subtitles", "bad-language", "not-a-dict"],
)
def test_bad_subtitle_options_are_refused_up_front(
    settings: Settings, given: list, error: type[Exception]
) -> None:
    with pytest.raises(error):
        JobContext.open("c7", "plain.mp4", "web", settings, given)


def test_a_sidecar_linking_out_of_the_media_root_is_skipped(
    settings: Settings, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.srt"
    outside.write_text(EN_SRT)
    generate(settings.media_root, "linked.mp4", size="320x240", seconds=2, rate=25)
    (settings.media_root / "linked.en.srt").symlink_to(outside)
    tracks, skipped = captions.gather(JobContext.open("c8", "linked.mp4", "web", settings))
    assert tracks == [] and [s["source"] for s in skipped] == ["linked.en.srt"]
    assert "outside" in skipped[0]["reason"] or "media root" in skipped[0]["reason"]


@pytest.mark.parametrize(("codec", "ext"), [("ass", "mkv"), ("subrip", "mkv"), ("webvtt", "webm")])
def test_other_embedded_text_codecs_become_cues(settings: Settings, codec: str, ext: str) -> None:
    root = settings.media_root
    copy = ["-c:v", "copy"]
    vp9 = ["-c:v", "libvpx-vp9", "-b:v", "100k", "-deadline", "realtime"]
    video = vp9 if ext == "webm" else copy
    out = root / f"{codec}.{ext}"
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(root / "plain.mp4"),
                 "-i", str(root / "en.srt"), "-map", "0:v", "-map", "1", *video, "-c:s", codec,
                 "-metadata:s:s:0", "language=spa", "-y", str(out)])  # fmt: skip
    ctx = JobContext.open("c9", f"{codec}.{ext}", "web", settings)
    (track,), skipped = captions.gather(ctx)
    assert skipped == [] and track.language == "spa"
    got = [(c.start, c.end) for c in track.cues]
    assert len(got) == len(cue_times(EN_SRT))
    for (start, end), (want_start, want_end) in zip(got, cue_times(EN_SRT), strict=True):
        assert abs(start - want_start) <= FRAME_S and abs(end - want_end) <= FRAME_S
    assert "Second line\nand more" in [c.text for c in track.cues]


def test_long_cues_repeated_past_the_bound_in_hls_segments_are_a_limit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cue is written into every HLS segment it spans: hour-long cues of a 4 MiB file would
    be gigabytes of segments. Over the bound the track is skipped for HLS (one WebVTT file
    for ``web`` repeats nothing)."""
    monkeypatch.setattr(defaults, "MAX_SUBTITLE_SEGMENTED_BYTES", 10_000)
    generate(settings.media_root, "spread.mp4", size="320x240", seconds=6, rate=25)
    (settings.media_root / "spread.en.srt").write_text(
        f"00:00:00,000 --> 00:00:06,000\n{'x' * 4000}\n"
    )
    tracks, skipped = captions.gather(JobContext.open("c12", "spread.mp4", "hls", settings))
    assert tracks == [] and [s["source"] for s in skipped] == ["spread.en.srt"]
    assert "HLS segments" in skipped[0]["reason"]
    (track,), _ = captions.gather(JobContext.open("c12", "spread.mp4", "web", settings))
    assert track.cues[0].end == 6.0


def test_an_unreadable_sidecar_is_skipped_with_a_reason(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker not running as root (the image's) cannot read a sidecar left 0600 by another
    user beside the input: reported, not the job's failure (it was a PermissionError)."""
    generate(settings.media_root, "locked.mp4", size="320x240", seconds=2, rate=25)
    (settings.media_root / "locked.en.srt").write_text(EN_SRT)
    real_open = Path.open

    def denied(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.name == "locked.en.srt":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    tracks, skipped = captions.gather(JobContext.open("c13", "locked.mp4", "web", settings))
    assert tracks == [] and [s["source"] for s in skipped] == ["locked.en.srt"]
    assert "Permission denied" in skipped[0]["reason"]


def test_a_sidecar_that_is_a_symlink_loop_is_skipped(settings: Settings) -> None:
    """Beside the input with its stem, so found: it was a RuntimeError (the job's failure)
    when its name was resolved to drop a repeat."""
    generate(settings.media_root, "looped.mp4", size="320x240", seconds=2, rate=25)
    (settings.media_root / "looped.en.srt").symlink_to("looped.en.srt")
    tracks, skipped = captions.gather(JobContext.open("c14", "looped.mp4", "web", settings))
    assert tracks == [] and [s["source"] for s in skipped] == ["looped.en.srt"]
    assert "cannot be resolved" in skipped[0]["reason"]


def test_a_huge_embedded_track_is_read_within_the_bound(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source may be 20 GiB, its text track gigabytes: ffmpeg stops writing the WebVTT past
    the bound and only the bound is read (it was written whole and read into memory)."""
    root = settings.media_root
    cue = "{}\n00:00:0{},000 --> 00:00:05,000\ncue {} " + "x" * 80 + "\n\n"
    (root / "big.srt").write_text("".join(cue.format(i + 1, i % 5, i) for i in range(500)))
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(root / "plain.mp4"),
                 "-i", str(root / "big.srt"), "-map", "0:v", "-map", "1", "-c", "copy",
                 "-c:s", "srt", "-y", str(root / "bigsubs.mkv")])  # fmt: skip
    monkeypatch.setattr(defaults, "MAX_SUBTITLE_BYTES", 2000)
    read: list[int] = []
    decode = captions.decode

    def counted(data: bytes, what: str) -> str:
        read.append(len(data))
        return decode(data, what)

    monkeypatch.setattr(captions, "decode", counted)
    tracks, skipped = captions.gather(JobContext.open("c15", "bigsubs.mkv", "web", settings))
    assert tracks == [] and "over the limit" in skipped[0]["reason"]
    assert read == [2001]


def test_bitmap_subtitles_are_reported_not_converted(settings: Settings) -> None:
    ctx = JobContext.open("c3", "plain.mp4", "web", settings)
    pgs = StreamInfo(index=5, type="subtitle", codec="hdmv_pgs_subtitle", language="ger")
    ctx.source.streams.append(pgs)
    tracks, skipped = captions.gather(ctx)
    assert tracks == []
    assert skipped == [
        {"source": "stream 5", "codec": "hdmv_pgs_subtitle", "language": "ger",
         "reason": "bitmap subtitles (needs OCR): not converted"}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"1\n00:00:01,000 --> 00:00:02,000\nhi\n\x00\x01\x02" * 10, InvalidInput),
        (b"1\n00:00:03,000 --> 00:00:02,000\nbackwards\n", InvalidInput),
        (b"1\n00:00:01,000 --> 00:00:02,000\n" + b"x" * (5 * 1024**2), LimitExceeded),
        (b"\xff\xfe\xfa not text", InvalidInput),
    ],
    ids=["binary", "broken-timing", "huge", "not-utf8"],
)
def test_hostile_sidecar_is_skipped_with_its_typed_error(
    settings: Settings, data: bytes, error: type[Exception]
) -> None:
    root = settings.media_root
    generate(root, "hostile.mp4", size="320x240", seconds=2, rate=25)
    (root / "hostile.en.srt").write_bytes(data)
    try:
        with pytest.raises(error):
            captions.parse_cues(captions.decode(data, "x"), "x", 2.0)
        ctx = JobContext.open("c4", "hostile.mp4", "web", settings)
        tracks, skipped = captions.gather(ctx)  # the job goes on without the track
        assert tracks == [] and [s["source"] for s in skipped] == ["hostile.en.srt"]
        assert skipped[0]["reason"]
    finally:
        (root / "hostile.en.srt").unlink()
