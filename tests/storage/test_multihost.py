"""Workers that share nothing: each in its own mount (and UTS) namespace, with a private tmpfs
over every folder the submitter uses (media root, output root, data dir: all under /tmp, and
/var/tmp), sharing only RabbitMQ, Redis and S3. A chunked HLS job spreads over both; a worker
SIGKILLed mid-chunk has its chunk redone by the other, and the job completes once."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO, Proc, child_env
from tests.storage.conftest import BUCKET, boto, s3_env, upload

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

if shutil.which("unshare") is None:
    pytest.skip("needs unshare(1)", allow_module_level=True)


def isolated_worker(spawn: Callable[..., Proc], host: str, env: dict[str, str]) -> Proc:
    """A video worker alone in its namespaces: hostname ``host``, empty /tmp and /var/tmp."""
    # The program itself (this checkout and its venv) stays visible even when the checkout
    # lives under /tmp: it is bind-mounted aside, then back over the fresh tmpfs.
    keep = f"/run/mediaapp-code-{host}"
    script = (
        f"hostname {host} && mkdir -p {keep} && mount --bind {REPO} {keep} && "
        "mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /var/tmp && "
        f"mkdir -p {REPO} && mount --bind {keep} {REPO} && "
        'mkdir -p "$MEDIAAPP_DATA_DIR" "$MEDIAAPP_MEDIA_ROOT" && '
        f"exec {BIN}/celery -A mediaapp worker -Q video_queue -n w@{host} -c 1 -l info"
    )
    cmd = ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script]
    proc = spawn(cmd, env=env, name=host)
    proc.wait_for("ready.", timeout=90)
    return proc


@pytest.fixture
def shared_nothing_env(seaweedfs: str, prefix: str) -> dict[str, str]:
    return child_env(
        **s3_env(
            MEDIAAPP_OUTPUT_URL=f"s3://{BUCKET}/{prefix}/out",
            MEDIAAPP_CHUNK_CACHE_URL=f"s3://{BUCKET}/{prefix}/cache",
            MEDIAAPP_CHUNKING="always",
            MEDIAAPP_CHUNK_WORKERS="2",
            MEDIAAPP_CHUNK_S="8",
            MEDIAAPP_FFMPEG_THREADS="1",
        )
    )


def clip(media_root: Path) -> Path:
    """24 s of 640x360 at 30 fps, a keyframe every 4 s (one HLS segment), cached."""
    from bench.overhead import make_clip

    path = media_root / "mh-360-24s.mp4"
    if not path.exists():
        make_clip(path, "640x360", 24, preset="ultrafast", gop=120)
    return path


def submit(url: str, profile: str = "hls") -> tuple[str, dict]:
    from mediaapp.jobs import job
    from mediaapp.jobs.app import app
    from mediaapp.jobs.client import Job

    job_id = f"mh-{uuid.uuid4().hex[:8]}"
    job.send(app, job_id=job_id, name=url, profile=profile)
    return job_id, Job(job_id, app=app).wait(timeout=240)


def assert_committed_once(manifest: dict) -> None:
    """The job's prefix holds exactly the files its manifest lists, plus the manifest."""
    prefix = manifest["output_url"].removeprefix(f"s3://{BUCKET}/")
    listed = {
        o["Key"]: o["Size"]
        for o in boto().list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    }
    files = {f["url"].removeprefix(f"s3://{BUCKET}/"): f["size"] for f in manifest["files"]}
    assert listed == {**files, prefix + "manifest.json": listed.get(prefix + "manifest.json")}
    stored = json.loads(
        boto().get_object(Bucket=BUCKET, Key=prefix + "manifest.json")["Body"].read()
    )
    assert stored["created_at"] == manifest["created_at"]
    urls = {f["url"] for f in manifest["files"]}
    assert all(o["url"] in urls for o in manifest["outputs"] if o["kind"] not in ("hls", "dash"))


@pytest.mark.parametrize("profile", ["hls", "web"])
def test_chunked_job_spreads_over_two_hosts(
    profile: str,
    spawn: Callable[..., Proc], clean_queues: None, shared_nothing_env: dict, prefix: str,
    media_root: Path,
) -> None:  # fmt: skip
    url = upload(clip(media_root), f"{prefix}/in/clip.mp4")
    isolated_worker(spawn, "host-a", shared_nothing_env)
    isolated_worker(spawn, "host-b", shared_nothing_env)
    _, manifest = submit(url, profile)
    assert manifest["strategy"] == "chunked"
    hosts = {c["hostname"] for c in manifest["chunking"]["chunks"]}
    assert hosts == {"host-a", "host-b"}, hosts
    assert_committed_once(manifest)
    cache = boto().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/cache/")
    keys = [o["Key"] for o in cache.get("Contents", [])]
    assert any("/src/" in k for k in keys) and any(k.endswith(".mp4") for k in keys)
    assert not any("/jobs/" in k for k in keys)  # the job's audio went with it


def test_a_worker_killed_mid_chunk_has_its_chunk_redone(
    spawn: Callable[..., Proc], clean_queues: None, shared_nothing_env: dict, prefix: str,
    media_root: Path,
) -> None:  # fmt: skip
    url = upload(clip(media_root), f"{prefix}/in/clip.mp4")
    a = isolated_worker(spawn, "host-a", shared_nothing_env)
    b = isolated_worker(spawn, "host-b", shared_nothing_env)
    import threading

    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(zip(("id", "m"), submit(url), strict=True))
    )
    thread.start()
    deadline = time.monotonic() + 120
    while "Task video.chunk[" not in a.text() and time.monotonic() < deadline:
        time.sleep(0.05)
    text = a.text()
    assert "Task video.chunk[" in text, text[-2000:]
    killed = text[text.rindex("Task video.chunk[") :].split("[", 1)[1].split("]", 1)[0]
    time.sleep(0.5)  # ffmpeg is encoding it
    a.kill()
    thread.join(300)
    manifest = result["m"]
    assert killed in b.text()  # redelivered to the other host, which encoded it
    assert {c["hostname"] for c in manifest["chunking"]["chunks"]} >= {"host-b"}
    index = int(killed.rsplit("chunk", 1)[1])
    chunk = next(c for c in manifest["chunking"]["chunks"] if c["index"] == index)
    assert chunk["hostname"] == "host-b"
    assert_committed_once(manifest)
