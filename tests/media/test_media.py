"""Media tier: the real ffmpeg binary and PyAV on small real files. No broker."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from mediaapp.errors import (
    ConfigurationError,
    EmptyInput,
    FFmpegError,
    FFmpegKilled,
    FFmpegTimeout,
    InputNotFound,
    InputOutsideRoot,
    LimitExceeded,
    NotMedia,
    UnknownProfile,
)
from mediaapp.media import command, inputs, steps
from mediaapp.media.ffprogress import Progress
from mediaapp.media.probe import ProbeResult, probe
from mediaapp.settings import Settings

pytestmark = pytest.mark.media


@pytest.fixture
def settings(tmp_path: Path, media_root: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", media_root=media_root)


def top_level_atoms(path: Path) -> list[str]:
    """MP4 box names at the top level, in file order (to check faststart: moov before mdat)."""
    atoms, data = [], path.read_bytes()
    i = 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        if size == 1:
            size = struct.unpack(">Q", data[i + 8 : i + 16])[0]
        atoms.append(kind.decode("latin-1"))
        if size < 8:
            break
        i += size
    return atoms


# --- the ffmpeg boundary --------------------------------------------------------------


def test_binary_comes_from_the_install_and_reports_a_version() -> None:
    binary = command.ffmpeg_binary()
    assert Path(binary).is_file() and os.access(binary, os.X_OK)
    assert command.ffmpeg_version()[:1].isalnum()


def test_configured_binary_must_exist() -> None:
    configured = Settings.from_env({"MEDIAAPP_FFMPEG": "/nonexistent/ffmpeg"})
    with pytest.raises(ConfigurationError, match="/nonexistent/ffmpeg"):
        command.ffmpeg_binary(command.Limits.from_settings(configured))


def test_run_reports_progress_and_returns_the_command(tmp_path: Path) -> None:
    import ffmpeg

    out = tmp_path / "bars.mp4"
    stream = ffmpeg.input("testsrc2=size=320x240:rate=25:duration=3", f="lavfi").output(
        command.output_target(out), vcodec="libx264", preset="ultrafast"
    )
    seen: list[Progress] = []
    result = command.run(stream, duration_s=3.0, on_progress=seen.append)
    assert out.stat().st_size > 0
    assert seen and seen[-1].done and seen[-1].percent == 100.0
    assert "-progress pipe:1" in result.cmd and str(out) in result.cmd


def test_failure_carries_command_exit_code_and_stderr_tail(
    tmp_path: Path, media_root: Path
) -> None:
    src = media_root / "small-pdf.pdf"
    stream = command.input_file(src).output(command.output_target(tmp_path / "x.mp4"))
    with pytest.raises(FFmpegError) as info:
        command.run(stream)
    err = info.value
    assert err.returncode and err.returncode > 0 and not err.retryable
    assert "small-pdf.pdf" in err.cmd and err.cmd.startswith(command.ffmpeg_binary())
    assert "Invalid data" in err.stderr or "invalid" in err.stderr.lower()
    assert err.to_dict()["cmd"] == err.cmd


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    import ffmpeg

    stream = ffmpeg.input("testsrc2=size=1280x720:rate=30", f="lavfi", re=None).output(
        command.output_target(tmp_path / "endless.mp4"), vcodec="libx264"
    )
    with pytest.raises(FFmpegTimeout) as info:
        command.run(stream, timeout_s=1.5)
    assert info.value.retryable and info.value.returncode == -9
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "endless.mp4")], capture_output=True)
    assert left.stdout == b"", "ffmpeg survived its timeout"


def test_protocols_other_than_file_are_refused_by_ffmpeg(tmp_path: Path, media_root: Path) -> None:
    # Even if a hostile name reached the boundary, the whitelist keeps ffmpeg on local files.
    listing = tmp_path / "list.ffconcat"
    listing.write_text("ffconcat version 1.0\nfile 'http://127.0.0.1:9/x.mp4'\n")
    stream = command.input_file(listing, f="concat", safe=0).output(
        command.output_target(tmp_path / "y.mp4")
    )
    with pytest.raises(FFmpegError) as info:
        command.run(stream)
    assert "whitelist" in info.value.stderr.lower() or "not on" in info.value.stderr.lower()


# --- probing --------------------------------------------------------------------------


def test_probe_real_clip_from_the_corpus(corpus: Path) -> None:
    info = probe(corpus / "ffmpeg-python-in1.mp4")
    assert abs(info.duration_s - 7.0) < 0.1
    assert info.video and (info.video.codec, info.video.width, info.video.height) == (
        "h264",
        320,
        240,
    )
    assert info.video.rotation == 0 and 29 < (info.video.fps or 0) < 31
    assert info.audio and info.audio.codec == "aac" and info.audio.sample_rate == 44100
    assert info.bit_rate and info.size == (corpus / "ffmpeg-python-in1.mp4").stat().st_size


def test_probe_reads_rotation_and_missing_audio(media_root: Path) -> None:
    rotated = probe(media_root / "rotated.mp4")
    assert rotated.video and rotated.video.rotation == 90 and rotated.audio is None
    assert inputs.display_size(rotated) == (240, 320)


def test_an_anamorphic_source_is_sized_by_its_display_aspect(tmp_path: Path) -> None:
    """352x288 with 64:45 pixels shows 500x288 (PAL 16:9): the square-pixel outputs must be
    that shape, not 352x288 squeezed (and VMAF scored against the same squeeze)."""
    path = tmp_path / "anamorphic.mp4"
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                 "testsrc2=size=352x288:rate=25:duration=0.2", "-vf", "setsar=64/45",
                 "-c:v", "libx264", "-preset", "ultrafast", "-y", str(path)])  # fmt: skip
    info = probe(path)
    assert (
        info.video
        and info.video.sar == "64:45"
        and (info.video.width, info.video.height)
        == (
            352,
            288,
        )
    )
    assert inputs.display_size(info) == (501, 288)
    assert inputs.target_size(info, 180) == (314, 180)
    assert ProbeResult.from_dict(info.to_dict()).video.sar == "64:45"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "name",
    ["small-pdf.pdf", "small-FlashVideo.flv", "small-png-truncated.png"],
)
def test_probe_refuses_broken_files(name: str, corpus: Path) -> None:
    with pytest.raises(NotMedia, match=name):
        probe(corpus / name)


# --- input resolution (bad input gets a typed error) ------------------------------------


def test_resolve_refuses_paths_outside_the_root(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InputOutsideRoot):
        inputs.resolve_input("../../etc/passwd", settings)
    with pytest.raises(InputOutsideRoot):
        inputs.resolve_input("/etc/passwd", settings)
    for url in ("concat:clip.mp4|clip.mp4", "http://127.0.0.1/x.mp4", "file:/etc/passwd"):
        with pytest.raises(InputOutsideRoot, match="protocols"):
            inputs.resolve_input(url, settings)
    link = settings.media_root / "escape.mp4"
    link.unlink(missing_ok=True)
    link.symlink_to("/etc/passwd")
    try:
        with pytest.raises(InputOutsideRoot):
            inputs.resolve_input("escape.mp4", settings)
    finally:
        link.unlink()


def test_resolve_refuses_missing_empty_and_huge(settings: Settings) -> None:
    with pytest.raises(InputNotFound):
        inputs.resolve_input("nope.mp4", settings)
    empty = settings.media_root / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(EmptyInput):
        inputs.resolve_input("empty.mp4", settings)
    small = Settings(data_dir=settings.data_dir, media_root=settings.media_root, max_input_bytes=10)
    with pytest.raises(LimitExceeded):
        inputs.resolve_input("clip.mp4", small)


def test_validation_limits(settings: Settings) -> None:
    short = Settings(data_dir=settings.data_dir, media_root=settings.media_root, max_duration_s=1)
    with pytest.raises(LimitExceeded, match="duration"):
        inputs.inspect("clip.mp4", short)
    tiny = Settings(data_dir=settings.data_dir, media_root=settings.media_root, max_pixels=1000)
    with pytest.raises(LimitExceeded, match="pixels"):
        inputs.inspect("clip.mp4", tiny)
    with pytest.raises(NotMedia, match="no video stream"):
        inputs.inspect("tone.m4a", settings)
    with pytest.raises(NotMedia, match="no streams"):
        inputs.inspect("small-Mpeg4.mp4", settings)


# --- transcoding ------------------------------------------------------------------------


def _check_web_output(manifest: dict, height: int, duration: float) -> Path:
    video = next(o for o in manifest["outputs"] if o["kind"] == "video")
    path = Path(video["path"])
    assert path.is_file() and video["size"] == path.stat().st_size
    assert video["codec"] == "h264" and video["height"] == height and video["width"] % 2 == 0
    assert abs(video["duration_s"] - duration) <= 1 / 24 + 1024 / 44100 + 0.05
    atoms = top_level_atoms(path)
    assert atoms.index("moov") < atoms.index("mdat"), "not faststart"
    again = probe(path)
    assert again.video and again.video.pix_fmt == "yuv420p" and again.video.rotation == 0
    poster = next(o for o in manifest["outputs"] if o["kind"] == "poster")
    assert poster["codec"] == "mjpeg" and Path(poster["path"]).read_bytes()[:2] == b"\xff\xd8"
    assert not [p for p in path.parent.iterdir() if ".part-" in p.name], "temporary file left"
    on_disk = json.loads((path.parent / "manifest.json").read_text())
    assert on_disk == manifest
    return path


def test_transcode_web_on_the_real_corpus_clip(settings: Settings) -> None:
    seen: list[Progress] = []
    m = steps.run("corpus1", "ffmpeg-python-in1.mp4", "web", settings, seen.append)
    _check_web_output(m, height=240, duration=m["source"]["duration_s"])
    assert probe(Path(m["outputs"][0]["path"])).audio is not None
    assert seen and seen[-1].done
    assert m["ffmpeg_version"] and len(m["commands"]) == 3 and m["profile"] == "web"
    check_previews(m, m["source"]["duration_s"])
    # Where the job's time went: the input probe, then ffmpeg (three commands) dominates.
    phases_s = m["phases_s"]
    assert {"probe", "ffmpeg", "verify", "hash", "other"} <= set(phases_s)
    assert phases_s["ffmpeg"] >= m["encode_s"] * 0.9
    assert sum(phases_s.values()) >= m["elapsed_s"] + phases_s["probe"] - 0.01


def check_previews(manifest: dict, duration: float) -> None:
    """Sprite sheet of the promised grid, VTT cues contiguous over exactly the duration."""
    from mediaapp.media import sprites

    sprite = next(o for o in manifest["outputs"] if o["kind"] == "sprite")
    vtt = next(o for o in manifest["outputs"] if o["kind"] == "vtt")
    cues = sprites.parse_vtt(Path(vtt["path"]).read_text())
    assert cues[0][0] == 0.0 and abs(cues[-1][1] - duration) < 0.002
    assert all(abs(a[1] - b[0]) < 0.002 for a, b in itertools.pairwise(cues))
    tiles = [c[2].split("#xywh=") for c in cues]
    assert {name for name, _ in tiles} == {Path(sprite["path"]).name}
    boxes = [tuple(int(v) for v in box.split(",")) for _, box in tiles]
    assert max(x + w for x, _, w, _ in boxes) == sprite["width"]
    assert max(y + h for _, y, _, h in boxes) == sprite["height"]
    assert len(cues) == min(100, math.ceil(duration))


def test_transcode_never_upscales_and_applies_rotation(settings: Settings) -> None:
    m = steps.run("big", "clip.mp4", "web-1080", settings)
    _check_web_output(m, height=360, duration=4.0)  # 360p source stays 360p
    r = steps.run("rot", "rotated.mp4", "web", settings)
    path = _check_web_output(r, height=320, duration=2.0)  # 320x240 rotated 90° → 240x320
    assert probe(path).video.width == 240
    assert probe(path).audio is None  # silent in, silent out


def test_transcode_is_idempotent_per_job(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = steps.run("again", "silent.mp4", "web", settings)

    def no_ffmpeg(*a: object, **k: object) -> None:
        raise AssertionError("ffmpeg ran again for a finished job")

    monkeypatch.setattr(command, "run", no_ffmpeg)
    assert steps.run("again", "silent.mp4", "web", settings) == first


def test_hostile_names_are_plain_files(settings: Settings) -> None:
    for hostile in ("-i evil.mp4", "it's $(reboot); ok.mp4", "name with spaces.mp4"):
        shutil.copy(settings.media_root / "silent.mp4", settings.media_root / hostile)
        m = steps.run(f"h{abs(hash(hostile))}", hostile, "web", settings)
        out = Path(m["outputs"][0]["path"])
        assert out.is_file() and not out.name.startswith("-") and "$" not in out.name


def test_failed_encode_leaves_no_output(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(stream: object, **kw: object) -> None:
        args = command.build_args(stream)
        Path(args[-2].removeprefix("file:")).write_bytes(b"half a file")
        raise FFmpegKilled("killed", returncode=-9)

    monkeypatch.setattr(command, "run", broken)
    with pytest.raises(FFmpegError):
        steps.run("broken", "silent.mp4", "web", settings)
    job_dir = settings.output_root / "broken"
    assert not job_dir.exists() or list(job_dir.iterdir()) == []


def test_unknown_profile(settings: Settings) -> None:
    with pytest.raises(UnknownProfile, match=r"known: .*\bweb\b"):
        steps.run("p", "clip.mp4", "4k-hdr", settings)


def test_container_header_claiming_huge_dimensions_is_overruled_by_the_bitstream(
    settings: Settings,
) -> None:
    """An MP4 whose stsd/tkhd claim 30000x30000: the decoder reads the real SPS (320x240)."""
    data = bytearray((settings.media_root / "silent.mp4").read_bytes())
    entry = data.index(b"avc1")
    struct.pack_into(">HH", data, entry + 28, 30000, 30000)  # VisualSampleEntry width/height
    tkhd = data.index(b"tkhd")
    size = struct.unpack(">I", data[tkhd - 4 : tkhd])[0]
    struct.pack_into(">II", data, tkhd - 4 + size - 8, 30000 << 16, 30000 << 16)
    (settings.media_root / "claims-30000.mp4").write_bytes(data)
    m = steps.run("claims", "claims-30000.mp4", "web", settings)
    assert (m["outputs"][0]["width"], m["outputs"][0]["height"]) == (320, 240)


def test_a_stalled_ffmpeg_is_killed(tmp_path: Path) -> None:
    from mediaapp.errors import FFmpegStalled

    hung = tmp_path / "hung-ffmpeg"
    hung.write_text("#!/bin/sh\necho frame=1\necho progress=continue\nexec sleep 60\n")
    hung.chmod(0o755)
    limits = command.Limits.from_settings(Settings.from_env({"MEDIAAPP_STALL_TIMEOUT_S": "1"}))
    with pytest.raises(FFmpegStalled, match="no progress for 1 s") as info:
        command.run(
            [str(hung), "-progress", "pipe:1", str(tmp_path / "marker-stall")], limits=limits
        )
    assert info.value.retryable and info.value.returncode == -9
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "marker-stall")], capture_output=True)
    assert left.stdout == b""


def test_a_probe_result_round_trips_through_the_context_of_later_steps(
    settings: Settings, media_root: Path, tmp_path: Path
) -> None:
    from mediaapp.media.probe import ProbeResult

    _, info = inputs.inspect("clip.mp4", settings)
    assert ProbeResult.from_dict(info.to_dict()) == info


def test_a_still_image_gets_its_previews(settings: Settings) -> None:
    """A PNG has no duration: ffmpeg makes it one frame (0.04 s), and the sprite sheet is
    one thumbnail over that frame (its fps filter was 1/0 and the job failed)."""
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                 "testsrc2=size=320x180", "-frames:v", "1", "-y",
                 str(settings.media_root / "still.png")])  # fmt: skip
    for profile in ("web", "thumbs"):
        manifest = steps.run(f"still-{profile}", "still.png", profile, settings)
        kinds = [o["kind"] for o in manifest["outputs"]]
        assert {"poster", "sprite", "vtt"} <= set(kinds) and ("video" in kinds) == (
            profile == "web"
        )
        check_previews(manifest, 0.04)
