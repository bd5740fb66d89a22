"""Object storage: a job with s3:// input and output against local folders, and the worker's
staging throughput against plain boto3 moving the same object.

    python -m bench storage [--reps 2] [--quick]

Both against a real SeaweedFS on 127.0.0.1 (started by scripts/seaweedfs if none answers on
``MEDIAAPP_BENCH_S3_PORT``, 18333 by default), measured alternately in one run, medians:

* job: a 60 s 1080p ``hls`` job (``--quick``: 10 s 360p) through the media layer
  (``steps.run``): staged from and published to the bucket, versus the same job on folders;
* staging: bytes/s of ``S3Store.stage`` (HEAD, size limit before a byte is read, parallel
  ranged download, size check; SHA-256 too when the store knows it) and ``S3Store.publish``
  (multipart, per-part CRC32 checked by the server, SHA-256 of the whole file as it is read,
  HEAD check) versus boto3's own ``download_file`` / ``upload_file`` of the same object,
  alternately first, median of at least 3.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import write_result
from bench.overhead import make_clip
from mediaapp.media import steps
from mediaapp.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PORT = int(os.environ.get("MEDIAAPP_BENCH_S3_PORT", "18333"))
BUCKET = "mediaapp"
KEY_ID, SECRET = "mediaapp-test", "mediaapp-test-secret"


def start_server() -> None:
    env = {**os.environ, "WEED": str(Path(sys.executable).parent / "weed"),
           "MEDIAAPP_S3_PORT": str(PORT), "MEDIAAPP_S3_BUCKET": BUCKET,
           "MEDIAAPP_S3_ACCESS_KEY_ID": KEY_ID, "MEDIAAPP_S3_SECRET_ACCESS_KEY": SECRET,
           "MEDIAAPP_S3_PUBLIC_READ": "1"}  # fmt: skip
    subprocess.run([str(REPO / "scripts" / "seaweedfs"), "start"], env=env, check=True)


def settings(data: Path, media: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=data, media_root=media, s3_endpoint_url=f"http://127.0.0.1:{PORT}",
        s3_access_key_id=KEY_ID, s3_secret_access_key=SECRET, s3_buckets=BUCKET, **extra,
    )  # fmt: skip


def plain_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{PORT}", region_name="us-east-1",
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
        config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip


def wait_ready(client: Any) -> None:
    for _ in range(120):
        try:
            client.head_bucket(Bucket=BUCKET)
            return
        except Exception:
            time.sleep(0.5)
    raise SystemExit("SeaweedFS did not come up")


def bench_job(scratch: Path, quick: bool, reps: int, prefix: str) -> dict[str, Any]:
    media = scratch / "media"
    media.mkdir()
    size, seconds = ("640x360", 10) if quick else ("1920x1080", 60)
    make_clip(media / "src.mp4", size, seconds, gop=120)
    client = plain_client()
    client.upload_file(str(media / "src.mp4"), BUCKET, f"{prefix}/in/src.mp4")
    url = f"s3://{BUCKET}/{prefix}/in/src.mp4"
    local_s, s3_s = [], []
    for i in range(reps):
        for kind in ("local", "s3"):
            data = scratch / f"data-{kind}-{i}"
            if kind == "local":
                st = settings(data, media)
                started = time.perf_counter()
                steps.run(f"bench-{i}", "src.mp4", "hls", st)
                local_s.append(time.perf_counter() - started)
            else:
                st = settings(data, media, output_url=f"s3://{BUCKET}/{prefix}/out")
                started = time.perf_counter()
                steps.run(f"bench-{i}", url, "hls", st)
                s3_s.append(time.perf_counter() - started)
            shutil.rmtree(data, ignore_errors=True)
    local, remote = statistics.median(local_s), statistics.median(s3_s)
    return {"clip": f"{seconds} s {size}", "local_s": local_s, "s3_s": s3_s,
            "local_median_s": round(local, 3), "s3_median_s": round(remote, 3),
            "ratio": round(remote / local, 3)}  # fmt: skip


def bench_staging(scratch: Path, quick: bool, reps: int, prefix: str) -> dict[str, Any]:
    from boto3.s3.transfer import TransferConfig

    from mediaapp.storage import open_store

    mib = 32 if quick else 256
    src = scratch / "blob.bin"
    with open(src, "wb") as fh:
        for _ in range(mib):
            fh.write(os.urandom(1 << 20))
    st = settings(scratch / "data", scratch)
    store = open_store(f"s3://{BUCKET}/{prefix}/blob/", st)
    client = plain_client()
    plain_cfg = TransferConfig()  # boto3's defaults
    times: dict[str, list[float]] = {"up": [], "plain_up": [], "down": [], "plain_down": []}

    def up_ours(i: int) -> None:
        store.publish(src, f"ours-{i}.bin")

    def up_plain(i: int) -> None:
        client.upload_file(str(src), BUCKET, f"{prefix}/blob/plain-{i}.bin", Config=plain_cfg)

    def down_ours(i: int) -> None:  # the object boto3 uploaded: what a user's input is
        store.stage(f"plain-{i}.bin", scratch / "down-ours", max_bytes=1 << 40)

    def down_plain(i: int) -> None:
        client.download_file(BUCKET, f"{prefix}/blob/plain-{i}.bin", str(scratch / "down-plain"),
                             Config=plain_cfg)  # fmt: skip

    ops = {"up": up_ours, "plain_up": up_plain, "down": down_ours, "plain_down": down_plain}
    for i in range(reps):  # alternate who goes first: neither gains from a warm server cache
        order = ["up", "plain_up", "down", "plain_down"]
        if i % 2:
            order = ["plain_up", "up", "plain_down", "down"]
        for name in order:
            t = time.perf_counter()
            ops[name](i)
            times[name].append(time.perf_counter() - t)
    size = src.stat().st_size
    rate = {k: round(size / statistics.median(v) / 1e6, 1) for k, v in times.items()}
    return {
        "bytes": size,
        "mb_s": rate,
        "upload_ratio": round(rate["up"] / rate["plain_up"], 3),
        "download_ratio": round(rate["down"] / rate["plain_down"], 3),
    }


def cleanup(prefix: str) -> None:
    client = plain_client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench storage")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.quick else 2)
    start_server()
    wait_ready(plain_client())
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    scratch = Path(tempfile.mkdtemp(prefix="mediaapp-bench-storage-"))
    try:
        result = {
            "job": bench_job(scratch, args.quick, reps, prefix),
            "staging": bench_staging(scratch, args.quick, max(reps * 2, 4), prefix),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        cleanup(prefix)
    print(result)
    write_result("storage", result, args.quick)
    return 0
