"""Fixtures of the storage tests: a real SeaweedFS S3 server (started if none answers on its
port, by scripts/seaweedfs, as ``./run test`` does), its settings, and a fresh prefix per test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO

S3_PORT = int(os.environ.get("MEDIAAPP_TEST_S3_PORT", "18333"))
S3_ENDPOINT = f"http://127.0.0.1:{S3_PORT}"
BUCKET = "mediaapp"
KEY_ID = os.environ.get("MEDIAAPP_TEST_S3_ACCESS_KEY_ID", "mediaapp-test")
SECRET = os.environ.get("MEDIAAPP_TEST_S3_SECRET_ACCESS_KEY", "mediaapp-test-secret")


def s3_env(**extra: str) -> dict[str, str]:
    """The MEDIAAPP_S3_* variables of the test server (for Settings.from_env or a child)."""
    return {
        "MEDIAAPP_S3_ENDPOINT_URL": S3_ENDPOINT,
        "MEDIAAPP_S3_ACCESS_KEY_ID": KEY_ID,
        "MEDIAAPP_S3_SECRET_ACCESS_KEY": SECRET,
        "MEDIAAPP_S3_BUCKETS": BUCKET,
        **extra,
    }


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def server(action: str = "start") -> None:
    """scripts/seaweedfs start|stop on the test port."""
    env = {
        **os.environ,
        "WEED": str(BIN / "weed"),
        "MEDIAAPP_S3_PORT": str(S3_PORT),
        "MEDIAAPP_S3_ACCESS_KEY_ID": KEY_ID,
        "MEDIAAPP_S3_SECRET_ACCESS_KEY": SECRET,
        "MEDIAAPP_S3_BUCKET": BUCKET,
        "MEDIAAPP_S3_PUBLIC_READ": "1",
    }
    subprocess.run([str(REPO / "scripts" / "seaweedfs"), action], env=env, check=True)


def public_url(url: str) -> str:
    """The plain HTTP address of an object of the test bucket (anonymous GET allowed)."""
    return f"{S3_ENDPOINT}/{url.removeprefix('s3://')}"


def boto(**kw: str):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=S3_ENDPOINT, region_name="us-east-1",
        aws_access_key_id=kw.get("key", KEY_ID), aws_secret_access_key=kw.get("secret", SECRET),
        config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip


@pytest.fixture(scope="session")
def seaweedfs() -> str:
    """The endpoint of a running SeaweedFS S3 server, its bucket ready."""
    server("start")
    client = boto()
    import time

    for _ in range(60):
        try:
            client.head_bucket(Bucket=BUCKET)
            return S3_ENDPOINT
        except Exception:
            time.sleep(0.5)
    raise AssertionError("SeaweedFS did not serve its bucket")


@pytest.fixture
def prefix(seaweedfs: str) -> Iterator[str]:
    """A fresh key prefix for one test; its objects are removed after."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    client = boto()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


def upload(path: Path, key: str) -> str:
    """Put a local file into the test bucket; its s3:// URL."""
    boto().upload_file(str(path), BUCKET, key)
    return f"s3://{BUCKET}/{key}"
