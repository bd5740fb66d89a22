"""Sources whose timestamps do not start together at zero: a start offset (Matroska, MPEG-TS),
a stream that starts late (MP4 edit lists), keyframes too sparse for an input seek."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaapp.media import command, mp4, steps
from mediaapp.media.probe import probe
from mediaapp.media.profiles import Profile
from mediaapp.settings import Settings

from ..media_sources import generate_with

pytestmark = pytest.mark.media

#: 3 s of 320x180 picture and a 48 kHz tone.
AV = ("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=3",
      "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000:duration=3")  # fmt: skip
H264_AAC = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac")
VP8_OPUS = ("-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus")


@pytest.fixture
def settings(tmp_path: Path, media_root: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", media_root=media_root, ffmpeg_threads=1)


@pytest.mark.parametrize(
    ("name", "codecs"),
    [("offset.mkv", H264_AAC), ("offset.webm", VP8_OPUS), ("offset.ts", H264_AAC),
     ("offset.mp4", H264_AAC)],
)  # fmt: skip
def test_a_start_offset_is_not_part_of_the_duration(
    media_root: Path, name: str, codecs: tuple[str, ...]
) -> None:
    generate_with(media_root, name, *AV, *codecs, "-output_ts_offset", "1.4")
    info = probe(media_root / name, decode_check=False)
    assert 2.95 < info.duration_s < 3.1, info.duration_s  # Matroska said 4.4 s


def test_a_matroska_source_starting_late_transcodes(settings: Settings, media_root: Path) -> None:
    generate_with(media_root, "offset.mkv", *AV, *H264_AAC, "-output_ts_offset", "1.4")
    m = steps.run("mkvoffset", "offset.mkv", "web", settings)
    video = next(o for o in m["outputs"] if o["kind"] == "video")
    assert abs(video["duration_s"] - m["source"]["duration_s"]) < 0.1
    vtt = next(o for o in m["outputs"] if o["kind"] == "vtt")
    assert vtt["duration_s"] == m["source"]["duration_s"]  # thumbnails span the content


#: The video 0.4 s after the audio, the audio 0.4 s after the video, the audio 1 s longer.
LATE_VIDEO = ("-itsoffset", "0.4", *AV[:4], *AV[4:], *H264_AAC)
LATE_AUDIO = (*AV[:4], "-itsoffset", "0.4", *AV[4:], *H264_AAC)
LONG_AUDIO = (*AV[:4], "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000:duration=4", *H264_AAC)


@pytest.mark.parametrize(
    ("name", "args", "video_end", "last_end"),
    [("late-video.mp4", LATE_VIDEO, 3.4, 3.4), ("late-audio.mp4", LATE_AUDIO, 3.0, 3.4),
     ("long-audio.mp4", LONG_AUDIO, 3.0, 4.0)],
)  # fmt: skip
@pytest.mark.parametrize("profile", ["web", "hls", "dash", "hls-multi"])
def test_streams_that_start_or_end_apart_transcode_keeping_the_offset(
    settings: Settings, media_root: Path, name: str, args: tuple[str, ...], video_end: float,
    last_end: float, profile: str,
) -> None:  # fmt: skip
    generate_with(media_root, name, *args)
    m = steps.run(f"apart-{profile}-{name[:-4]}", name, profile, settings)
    out = m["outputs"]
    if profile == "web":  # the MP4 keeps the offset (an edit list), as ffmpeg does
        info = probe(Path(out[0]["path"]), decode_check=False)
        assert info.video is not None and info.audio is not None
        assert abs((info.video.start_s or 0) - (video_end - 3.0)) < 0.05
        assert abs((info.audio.start_s or 0) - (0.4 if name == "late-audio.mp4" else 0)) < 0.05
        assert abs(out[0]["duration_s"] - last_end) < 0.1
    elif profile == "dash":  # the MPD lasts until its last representation ends
        assert abs(out[0]["duration_s"] - last_end) < 0.1
    else:  # a rung's playlist runs to where its video ends, a late start included
        rung = next(o for o in out if o["kind"] == "hls-rendition")
        assert abs(rung["duration_s"] - video_end) < 0.1


def test_a_poster_is_found_where_no_keyframe_follows_the_seek(
    settings: Settings, media_root: Path, tmp_path: Path
) -> None:
    # One keyframe in 3 s of MPEG-TS: an input seek to the poster's time finds no frame.
    name = generate_with(media_root, "one-keyframe.ts", *AV[:4], *H264_AAC[:6], "-g", "600")
    m = steps.run("sparse", name, "web", settings)
    poster = next(o for o in m["outputs"] if o["kind"] == "poster")
    assert (poster["width"], poster["height"]) == (320, 180)
    (cmd,) = [c for c in m["commands"] if ".poster.part-" in c]
    assert cmd.index("-ss ") > cmd.index(" -i ")  # decoded from the start up to the time
    first = tmp_path / "first.jpg"  # not just the first frame
    info, profile = probe(media_root / name), Profile(name="p", kind="mp4", poster_at=0.0)
    command.run(mp4.poster_stream(media_root / name, first, info, profile))
    assert first.read_bytes() != Path(poster["path"]).read_bytes()


def test_a_poster_reached_by_an_input_seek_is_taken_so(
    settings: Settings, media_root: Path
) -> None:
    m = steps.run("seekable", "clip.mp4", "thumbs", settings)
    (poster,) = [c for c in m["commands"] if ".poster.part-" in c]
    assert poster.index("-ss ") < poster.index(" -i ")  # the fast path: nothing decoded twice


@pytest.mark.parametrize("sample", [0, None], ids=["whole", "windows"])
def test_a_late_video_is_scored_frame_for_frame(
    tmp_path: Path, media_root: Path, sample: int | None
) -> None:
    """HLS and DASH fill a late video's lead with copies of its first frame (the outputs keep
    the offset): the scorer must skip them, or it compares every frame with one 12 frames
    away (VMAF 15-31 for 95)."""
    generate_with(media_root, "late-video.mp4", *LATE_VIDEO)
    quality = "{ measure = true" + (f", sample = {sample} }}" if sample is not None else " }")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "q.toml").write_text("".join(
        f'[q-{kind}]\nkind = "{kind}"\nsegment_s = 1\nrungs = [{{ height = 180, '
        f"video_kbps = 900 }}]\nquality = {quality}\n\n" for kind in ("hls", "dash")
    ) + f'[q-web]\nkind = "mp4"\nheight = 180\nquality = {quality}\n')  # fmt: skip
    settings = Settings(data_dir=tmp_path / "data", media_root=media_root, ffmpeg_threads=1,
                        profiles_dir=str(tmp_path / "profiles"))  # fmt: skip
    scores = {}
    for kind in ("web", "hls", "dash"):
        m = steps.run(f"late-{kind}-{sample}", "late-video.mp4", f"q-{kind}", settings)
        (video,) = [o for o in m["outputs"] if "quality" in o]
        scores[kind] = video["quality"]["vmaf_mean"]
    assert min(scores.values()) > 85 and max(scores.values()) - min(scores.values()) < 6, scores
