"""Faults of the object store, against real SeaweedFS servers: wrong credentials are a
configuration error; a server stopped in the middle of a job's publication and started
again makes the step retry, and nothing half-published is ever listed by a manifest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mediaapp.errors import ConfigurationError
from mediaapp.settings import Settings
from mediaapp.storage import staging
from tests.conftest import BIN, REPO, Proc, child_env, worker_cmd
from tests.storage.conftest import BUCKET, KEY_ID, SECRET, s3_env, upload

FAULT_PORT = int(os.environ.get("MEDIAAPP_TEST_S3_FAULT_PORT", "18433"))


@pytest.mark.integration
def test_wrong_credentials_are_a_configuration_error(prefix: str, tmp_path: Path) -> None:
    from tests.conftest import SAMPLES

    url = upload(SAMPLES / "clip.mp4", f"{prefix}/in/clip.mp4")
    env = s3_env(MEDIAAPP_DATA_DIR=str(tmp_path), MEDIAAPP_S3_SECRET_ACCESS_KEY="not-the-secret")
    settings = Settings.from_env(env)
    with pytest.raises(ConfigurationError) as err:
        staging.stage_input(url, settings)
    assert "not-the-secret" not in str(err.value) and err.value.exit_code == 78
    bad_key = Settings.from_env({**env, "MEDIAAPP_S3_ACCESS_KEY_ID": "nobody"})
    with pytest.raises(ConfigurationError):
        staging.stage_input(url, bad_key)


def fault_server(action: str, folder: Path) -> None:
    env = {
        **os.environ,
        "WEED": str(BIN / "weed"),
        "MEDIAAPP_S3_PORT": str(FAULT_PORT),
        "MEDIAAPP_S3_DIR": str(folder),
        "MEDIAAPP_S3_BUCKET": BUCKET,
        "MEDIAAPP_S3_ACCESS_KEY_ID": KEY_ID,
        "MEDIAAPP_S3_SECRET_ACCESS_KEY": SECRET,
    }
    subprocess.run([str(REPO / "scripts" / "seaweedfs"), action], env=env, check=True)


def fault_client():  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{FAULT_PORT}", region_name="us-east-1",
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                      connect_timeout=1, read_timeout=2),
    )  # fmt: skip


def keys(client, prefix: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    try:
        found = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    except Exception:
        return {}
    return {o["Key"]: o["Size"] for o in found}


@pytest.mark.integration
@pytest.mark.e2e
def test_server_stopped_mid_upload_then_back_the_step_retries(
    spawn: Callable[..., Proc], clean_queues: None, media_root: Path, seaweedfs: str
) -> None:
    folder = Path(f"/var/tmp/mediaapp-seaweedfs-fault-{uuid.uuid4().hex[:6]}")
    fault_server("start", folder)
    try:
        client = fault_client()
        for _ in range(60):
            try:
                client.head_bucket(Bucket=BUCKET)
                break
            except Exception:
                time.sleep(0.5)
        env = child_env(**s3_env(
            MEDIAAPP_S3_ENDPOINT_URL=f"http://127.0.0.1:{FAULT_PORT}",
            MEDIAAPP_OUTPUT_URL=f"s3://{BUCKET}/faults", MEDIAAPP_CHUNKING="never",
        ))  # fmt: skip
        cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
        worker = spawn(cmd, env, "worker")
        worker.wait_for("ready.", timeout=60)
        from mediaapp.jobs import job
        from mediaapp.jobs.app import app
        from mediaapp.jobs.client import Job

        job_id = f"fault-{uuid.uuid4().hex[:8]}"
        job.send(app, job_id=job_id, name="clip.mp4", profile="hls")
        # Stop the server as soon as the first output object is there (publication begun).
        deadline = time.monotonic() + 120
        while not keys(client, f"faults/{job_id}/") and time.monotonic() < deadline:
            time.sleep(0.01)
        fault_server("kill", folder)  # at once: a SIGTERMed server finishes the upload
        half = True  # what was there when it stopped: some outputs, no manifest
        threading.Timer(3.0, fault_server, ("start", folder)).start()
        try:
            manifest = Job(job_id, app=app).wait(timeout=180)
        except Exception as exc:  # out of retries: it must fail typed and retryable
            assert getattr(exc, "retryable", False) or "StorageUnavailable" in str(exc), exc
            assert f"faults/{job_id}/manifest.json" not in keys(client, f"faults/{job_id}/")
            return
        # The upload got through the outage: by the S3 client's own retries (the server is
        # back within 3 s) or by the step's retry ("Retry in" in the worker's log), whichever
        # the timing gives; either way the published set is whole and the manifest last.
        assert half
        listed = keys(client, f"faults/{job_id}/")
        files = {f["url"].removeprefix(f"s3://{BUCKET}/"): f["size"] for f in manifest["files"]}
        assert listed == {
            **files,
            f"faults/{job_id}/manifest.json": listed[f"faults/{job_id}/manifest.json"],
        }
        body = client.get_object(Bucket=BUCKET, Key=f"faults/{job_id}/manifest.json")["Body"]
        assert json.loads(body.read())["created_at"] == manifest["created_at"]
    finally:
        fault_server("stop", folder)
        shutil.rmtree(folder, ignore_errors=True)
