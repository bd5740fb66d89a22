"""Chunked parallel encoding: the cost model (unit), split/encode/join on real media (media),
and chunk tasks spread over real workers, one of them killed or failing (integration, e2e)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mediaapp.errors import MediaError, NotMedia
from mediaapp.jobs.client import submit
from mediaapp.media import chunking, chunkplan, command, steps
from mediaapp.media.context import JobContext
from mediaapp.media.probe import ProbeResult, StreamInfo, probe, timing
from mediaapp.ops.audit import read_log
from mediaapp.settings import Settings

from ..conftest import Proc, child_env, wait_for, worker_cmd


def clip(media_root: Path, name: str, size: str, seconds: int, gop: int, rate: int = 25) -> str:
    """A test-pattern clip with audio and a keyframe every ``gop`` frames (cached)."""
    path = media_root / name
    if not path.exists():
        command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop),
                    "-c:a", "aac", "-shortest", "-y", str(path)])  # fmt: skip
    return name


def source(
    duration: float, width: int = 1920, height: int = 1080, fps: float = 30.0
) -> ProbeResult:
    video = StreamInfo(index=0, type="video", codec="h264", width=width, height=height, fps=fps)
    return ProbeResult("x.mp4", 1, "mp4", duration, None, [video])


def run_chunked(job_id: str, name: str, profile: str, settings: Settings) -> dict:
    """Every step of a chunked job, in this process, in the order the tasks run them."""
    ctx = JobContext.open(job_id, name, profile, settings)
    plan = steps.chunk_plan(ctx, workers=2)
    chunks = steps.split(ctx, plan.chunk_s)
    parts = [steps.encode_chunk(ctx, c) for c in chunks]
    parts.append(steps.encode_audio(ctx))
    if profile.startswith("web"):
        parts.append(steps.previews(ctx))
    return steps.assemble(ctx, parts, plan.to_dict())


# --- split, encode, join on real media ------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, media_root: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", media_root=media_root, chunking="always",
                    chunk_s=4, ffmpeg_threads=1)  # fmt: skip


@pytest.mark.media
def test_profiles_that_cannot_chunk_say_why(settings: Settings) -> None:
    def plan(name: str, profile: str) -> chunkplan.ChunkPlan:
        return steps.chunk_plan(JobContext.open("p", name, profile, settings), 4)

    assert plan("tone.m4a", "audio").reason == "no video"
    thumbs = plan("clip.mp4", "thumbs")
    assert not thumbs.chunked and thumbs.reason == "thumbs profile"
    assert plan("clip.mp4", "web").chunked  # always: it may


@pytest.mark.media
def test_chunked_mp4_is_seamless_with_audio_encoded_once(
    settings: Settings, media_root: Path
) -> None:
    name = clip(media_root, "chunky-12s.mp4", "640x360", 12, gop=25)
    manifest = run_chunked("chunked-web", name, "web", settings)
    assert manifest["strategy"] == "chunked"
    chunks = manifest["chunking"]["chunks"]
    assert len(chunks) == 3 and [c["index"] for c in chunks] == [0, 1, 2]
    video = next(o for o in manifest["outputs"] if o["kind"] == "video")
    t = timing(Path(video["path"]))
    assert t.frames == 300 == timing(media_root / name).frames  # 12 s at 25 fps, every frame
    assert t.irregular() == [] and abs(t.frame_s - 0.04) < 1e-6
    assert abs(t.video_s - 12.0) < 0.04 and abs((t.audio_s or 0) - 12.0) < 0.04
    assert video["joins"]["joins"] == [100, 200]
    assert {o["kind"] for o in manifest["outputs"]} == {"video", "poster", "sprite", "vtt"}
    audio_commands = [c for c in manifest["commands"] if "-acodec" in c and "-an" not in c]
    assert len(audio_commands) == 1, "the audio is encoded once, never per chunk"
    assert all(" -an " in c for c in manifest["commands"] if "c00" in c)  # chunks: video only
    assert probe(Path(video["path"])).video.height == 360
    assert not (settings.output_root / "chunked-web" / ".chunks").exists()


@pytest.mark.media
def test_chunks_are_reused_by_content_on_resubmission(settings: Settings, media_root: Path) -> None:
    name = clip(media_root, "chunky-12s.mp4", "640x360", 12, gop=25)
    first = run_chunked("reuse-1", name, "web", settings)
    second = run_chunked("reuse-2", name, "web", settings)
    assert [c["reused"] for c in first["chunking"]["chunks"]] == [False] * 3
    assert [c["reused"] for c in second["chunking"]["chunks"]] == [True] * 3
    assert all(c["encode_s"] == 0 for c in second["chunking"]["chunks"])
    one, two = (next(o for o in m["outputs"] if o["kind"] == "video") for m in (first, second))
    assert timing(Path(two["path"])).frames == timing(Path(one["path"])).frames == 300
    # A killed encode's leftovers in the cache are cleared when that chunk is encoded again.
    entry = next(chunking.cache_dir(settings).rglob("*.video.mp4"))
    stale = entry.with_name(f".{entry.name}.dead0001")
    stale.write_bytes(b"half a chunk")
    os.utime(stale, (1, 1))
    entry.unlink()
    run_chunked("reuse-2b", name, "web", settings)
    assert entry.is_file() and not stale.exists()
    # Other settings make other chunks: a different profile is not served from the cache.
    third = run_chunked("reuse-3", name, "web-480", settings)
    assert [c["reused"] for c in third["chunking"]["chunks"]] == [False] * 3


@pytest.mark.media
def test_chunked_hls_ladder_keeps_segments_aligned_across_rungs(
    settings: Settings, media_root: Path
) -> None:
    name = clip(media_root, "chunky-720-10s.mp4", "1280x720", 10, gop=50)
    manifest = run_chunked("chunked-hls", name, "hls", settings)
    assert manifest["strategy"] == "chunked" and len(manifest["chunking"]["chunks"]) == 3
    root = settings.output_root / "chunked-hls" / "hls"
    playlists = sorted(root.glob("*/index.m3u8"))
    assert [p.parent.name for p in playlists] == ["0_720p", "1_480p", "2_360p"]
    extinf = {p.parent.name: [ln for ln in p.read_text().splitlines() if ln.startswith("#EXTINF")]
              for p in playlists}  # fmt: skip
    assert len({tuple(v) for v in extinf.values()}) == 1, extinf  # the same cuts on every rung
    assert extinf["0_720p"] == ["#EXTINF:4.000000,", "#EXTINF:4.000000,", "#EXTINF:2.000000,"]
    for joins in manifest["chunking"]["joins"].values():
        assert joins["frames"] == 250 and joins["joins"] == [100, 200]
    # The package plays: ffmpeg's HLS client reads the master playlist to the end.
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-i",
                str(root / "master.m3u8"), "-map", "0", "-f", "null", "-"])  # fmt: skip


@pytest.mark.media
def test_chunked_dash_and_a_rotated_source(settings: Settings, media_root: Path) -> None:
    name = clip(media_root, "chunky-720-10s.mp4", "1280x720", 10, gop=50)
    dash = run_chunked("chunked-dash", name, "dash", settings)
    assert [o["kind"] for o in dash["outputs"]][:1] == ["dash-mpd"]
    assert sorted(o["height"] for o in dash["outputs"] if o["kind"] == "dash-representation") == [
        360, 480, 720,
    ]  # fmt: skip
    one_s = Settings(
        data_dir=settings.data_dir, media_root=media_root, chunking="always", chunk_s=1
    )
    rotated = run_chunked("chunked-rot", "rotated.mp4", "web", one_s)
    video = next(o for o in rotated["outputs"] if o["kind"] == "video")
    assert (video["width"], video["height"]) == (240, 320)  # rotation applied in every chunk


@pytest.mark.media
def test_a_gap_at_a_join_fails_verification(
    settings: Settings, media_root: Path, tmp_path: Path
) -> None:
    name = clip(media_root, "chunky-12s.mp4", "640x360", 12, gop=25)
    ctx = JobContext.open("gap", name, "web", settings)
    work = tmp_path / "work"
    chunks = chunking.split(ctx.src, work, 4)
    rendition = steps.video_outputs(ctx)
    parts = [chunking.encode_chunk(work, c, rendition, 25.0, None, settings) for c in chunks]
    # Play chunk 0 for 4.2 s instead of 4 s: the next chunk starts 0.2 s late.
    (work / "concat.video.txt").write_text(
        "file 'e00000.video.mp4'\nduration 4.2\nfile 'e00001.video.mp4'\nfile 'e00002.video.mp4'\n"
    )
    joined = work / "gap.mp4"
    command.run(command.concat_input(work / "concat.video.txt").output(
        command.output_target(joined), c="copy"))  # fmt: skip
    with pytest.raises(NotMedia, match=r"gap at frame 100 \(the join before chunk 1\)"):
        chunking.verify_joins(joined, parts, ctx.source, frame_s=0.04)
    # A lost chunk is a frame count short.
    (work / "concat.video.txt").write_text("file 'e00000.video.mp4'\nfile 'e00002.video.mp4'\n")
    command.run(command.concat_input(work / "concat.video.txt").output(
        command.output_target(joined), c="copy"))  # fmt: skip
    with pytest.raises(NotMedia, match="200 frames, the chunks hold 300"):
        chunking.verify_joins(joined, parts, ctx.source, frame_s=0.04)


@pytest.mark.media
def test_a_variable_rate_source_chunked_gives_the_single_pass_frames(
    media_root: Path, tmp_path: Path
) -> None:
    # 24 fps for 2 s, then 30 fps for 2 s (27 fps out): chunks from 1 s, 2 s, 3.2 s; the last
    # starts between two output frames (86.4), and its fps grid used to begin there.
    name = "chunky-vfr.mp4"
    if not (media_root / name).exists():
        command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error",
                     "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=2",
                     "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=2",
                     "-f", "lavfi", "-i", "sine=frequency=330:duration=4",
                     "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]",
                     "-map", "2:a", "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast",
                     "-g", "12", "-c:a", "aac", "-y", str(media_root / name)])  # fmt: skip
    settings = Settings(data_dir=tmp_path / "data", media_root=media_root, chunking="always",
                        chunk_s=1, ffmpeg_threads=1)  # fmt: skip
    chunked = run_chunked("vfr-chunked", name, "web", settings)
    single = steps.run("vfr-single", name, "web", settings)
    assert (chunked["strategy"], single["strategy"]) == ("chunked", "single")
    one, two = (Path(next(o for o in m["outputs"] if o["kind"] == "video")["path"])
                for m in (chunked, single))  # fmt: skip
    assert timing(one).frames == timing(two).frames == 108
    assert chunked["chunking"]["joins"]["video"]["joins"] == [27, 54, 86]
    # Two encodes of the same pictures: 37 dB or more; a frame off: 24-26 dB.
    stats = tmp_path / "psnr.log"
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(one), "-i",
                 str(two), "-lavfi", f"psnr=stats_file={stats}", "-f", "null", "-"])  # fmt: skip
    psnr = [float(v) for v in re.findall(r"psnr_avg:(\S+)", stats.read_text())]
    assert len(psnr) == 108
    assert [(i, v) for i, v in enumerate(psnr) if v < 33] == []


# --- real workers ------------------------------------------------------------------------


def records(log: Path, task_id: str, name: str) -> list[dict]:
    return [r for r in read_log(log) if r.get("task_id") == task_id and r.get("name") == name]


def fake_ffmpeg(tmp_path: Path, on_chunk1: str) -> Path:
    """An ffmpeg that runs the shell command ``on_chunk1`` when it is given chunk 1, and is
    the real ffmpeg otherwise."""
    fake = tmp_path / "ffmpeg-fake"
    fake.write_text(f"""#!/bin/sh
case "$*" in *c00001.mkv*) {on_chunk1} ;; esac
exec {command.ffmpeg_binary()} "$@"
""")
    fake.chmod(0o755)
    return fake


def chunk_workers(spawn: Callable[..., Proc], env: dict[str, str], count: int = 2) -> list[Proc]:
    procs = []
    for i in range(count):
        cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
        procs.append(spawn(cmd, env, f"worker{i}"))
    for proc in procs:
        proc.wait_for("ready.", timeout=60)
    return procs


@pytest.mark.integration
@pytest.mark.e2e
def test_chunks_spread_over_workers_and_a_killed_one_loses_only_its_chunk(
    spawn: Callable[..., Proc], audit_consumer: Path, media_root: Path, tmp_path: Path
) -> None:
    name = clip(media_root, "chunky-720-24s.mp4", "1280x720", 24, gop=50)
    env = child_env(MEDIAAPP_CHUNKING="always", MEDIAAPP_CHUNK_S="6", MEDIAAPP_FFMPEG_THREADS="1",
                    MEDIAAPP_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
    first, _ = chunk_workers(spawn, env)
    job = submit(name, profile="web")
    chunk_ids = [f"{job.id}-chunk{i}" for i in range(4)]
    wait_for(lambda: any(s["state"] == "PROGRESS" for s in job.steps()), what="a chunk to encode")
    first.kill()  # SIGKILL one worker (main and pool child) while chunks are encoding
    cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    spawn(cmd, env, "replacement").wait_for("ready.", timeout=60)
    manifest = job.wait(timeout=300)
    assert manifest["strategy"] == "chunked" and manifest["chunking"]["plan"]["workers"] == 2
    chunks = manifest["chunking"]["chunks"]
    assert [c["index"] for c in chunks] == [0, 1, 2, 3]
    assert len({c["pid"] for c in chunks}) >= 2, "every chunk ran in the same process"
    video = next(o for o in manifest["outputs"] if o["kind"] == "video")
    assert video["joins"]["frames"] == 600 and video["joins"]["joins"] == [150, 300, 450]
    wait_for(lambda: records(audit_consumer, job.id, "job.finished"), what="job.finished")
    starts = {cid: records(audit_consumer, cid, "task.started") for cid in chunk_ids}
    redone = [cid for cid, s in starts.items() if len(s) > 1]
    assert len(redone) <= 1 and all(len(s) >= 1 for s in starts.values()), starts
    for cid in redone:  # the killed worker's chunk came back by redelivery, alone
        assert [r["body"]["redelivered"] for r in starts[cid]] == [False, True]
    assert all(len(records(audit_consumer, c, "task.succeeded")) == 1 for c in chunk_ids)
    # The same file again, as a new job: every chunk comes from the cache (content hash),
    # whichever worker meets it, the one killed included.
    again = submit(name, profile="web").wait(timeout=120)
    assert [c["reused"] for c in again["chunking"]["chunks"]] == [True] * 4
    assert next(o for o in again["outputs"] if o["kind"] == "video")["joins"]["frames"] == 600


@pytest.mark.integration
@pytest.mark.e2e
def test_a_failing_chunk_is_retried_alone(
    spawn: Callable[..., Proc], audit_consumer: Path, media_root: Path, tmp_path: Path
) -> None:
    name = clip(media_root, "chunky-12s.mp4", "640x360", 12, gop=25)
    # An ffmpeg that is killed the first time it meets chunk 1, then behaves.
    marker = tmp_path / "failed-once"
    fake = fake_ffmpeg(tmp_path, f"[ -e {marker} ] || {{ touch {marker}; kill -9 $$; }}")
    env = child_env(MEDIAAPP_CHUNKING="always", MEDIAAPP_CHUNK_S="4", MEDIAAPP_FFMPEG=str(fake),
                    MEDIAAPP_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
    chunk_workers(spawn, env)
    manifest = submit(name, profile="web").wait(timeout=180)
    job_id = manifest["job_id"]
    assert marker.exists() and manifest["strategy"] == "chunked"
    wait_for(lambda: records(audit_consumer, job_id, "job.finished"), what="job.finished")
    retried = {
        r["task_id"]
        for r in read_log(audit_consumer)
        if r.get("name") == "task.retried" and str(r.get("task_id", "")).startswith(job_id)
    }
    assert retried == {f"{job_id}-chunk1"}
    for i in (0, 2):
        assert len(records(audit_consumer, f"{job_id}-chunk{i}", "task.started")) == 1
    assert json.dumps(manifest["chunking"]["joins"]["video"]["joins"]) == "[100, 200]"


@pytest.mark.integration
@pytest.mark.e2e
def test_a_chunk_that_fails_for_good_fails_the_job_with_its_typed_error(
    spawn: Callable[..., Proc], audit_consumer: Path, media_root: Path, tmp_path: Path
) -> None:
    name = clip(media_root, "chunky-12s.mp4", "640x360", 12, gop=25)
    fake = fake_ffmpeg(tmp_path, 'echo "Invalid data found when processing input" >&2; exit 1')
    env = child_env(MEDIAAPP_CHUNKING="always", MEDIAAPP_CHUNK_S="4", MEDIAAPP_FFMPEG=str(fake),
                    MEDIAAPP_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
    (worker,) = chunk_workers(spawn, env, count=1)
    job = submit(name, profile="web")
    with pytest.raises(MediaError, match=rf"step {job.id}-chunk1 .*FFmpegError: .*Invalid data"):
        job.wait(timeout=120)
    assert type(job.error).__name__ == "FFmpegError"  # typed, not Celery's ChordError
    wait_for(lambda: records(audit_consumer, job.id, "job.finished"), what="job.finished")
    (finished,) = records(audit_consumer, job.id, "job.finished")
    assert finished["body"]["state"] == "FAILURE"
    assert finished["body"]["error"]["type"] == "FFmpegError"
    assert worker.alive()
