"""URL parsing and confinement of the storage layer, and its error paths on moto (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaapp.errors import (
    ConfigurationError,
    EmptyInput,
    InputNotFound,
    InputOutsideRoot,
    InvalidInput,
    LimitExceeded,
    StorageUnavailable,
)
from mediaapp.settings import Settings
from mediaapp.storage import urls

pytestmark = pytest.mark.unit
ALLOWED = frozenset({"media", "out-bucket"})


def test_parse_an_object_url() -> None:
    u = urls.parse("s3://media/in/clip.mp4", ALLOWED)
    assert (u.bucket, u.key, u.name, str(u)) == (
        "media",
        "in/clip.mp4",
        "clip.mp4",
        "s3://media/in/clip.mp4",
    )
    assert urls.parse("s3://out-bucket/", ALLOWED, prefix=True).key == ""
    assert urls.is_url("S3://media/x") and not urls.is_url("clip.mp4")


@pytest.mark.parametrize(
    "url",
    [
        "s3://elsewhere/clip.mp4",  # not on the allow-list
        "s3://Media/clip.mp4",  # not a bucket name
        "s3://media/../secret/clip.mp4",
        "s3://media/in/../../x.mp4",
        "s3://media/in/%2e%2e/x.mp4",  # encoded traversal
        "s3://media/in/%252e%252e/x.mp4",  # encoded twice
        "s3://media/in/%2E%2E%2Fx.mp4",
        "s3://media/in\\..\\x.mp4",
        "s3://media//etc/passwd",
        "s3://media/in//x.mp4",
        "s3://media/./x.mp4",
        "s3://media/in/x.mp4\x00.txt",
        "s3://media/in/\nx.mp4",
        "s3://media/x.mp4?versionId=1",
        "s3://media/",  # a bucket, not an object
        "s3://media/dir/",  # a prefix, not an object
        "http://media/x.mp4",
        "file:///etc/passwd",
        "concat:a.mp4|b.mp4",
        "s3://media/" + "k" * 1100,  # absurd key length
    ],
)
def test_confinement_refuses(url: str) -> None:
    with pytest.raises(InvalidInput):  # InputOutsideRoot is one
        urls.parse(url, ALLOWED)


def test_traversal_is_outside_the_root_and_child_keys_are_confined() -> None:
    with pytest.raises(InputOutsideRoot):
        urls.parse("s3://media/a/%2e%2e/%2e%2e/b", ALLOWED)
    base = urls.parse("s3://media/out/", ALLOWED, prefix=True)
    assert str(base.child("job/x.m3u8")) == "s3://media/out/job/x.m3u8"
    for bad in ("../x", "a/../../x", "%2e%2e/x", "/abs"):
        with pytest.raises(InputOutsideRoot):
            base.child(bad)


def test_a_bad_output_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        urls.output_prefix("s3://nope/out", ALLOWED)


def test_credentials_never_show() -> None:
    s = Settings(s3_access_key_id="AKIDSECRET1", s3_secret_access_key="hunter2-secret")
    for text in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert "hunter2-secret" not in text and "AKIDSECRET1" not in text


# Error paths on moto (an in-process S3): fast, no server.

moto = pytest.importorskip("moto")


@pytest.fixture
def s3(tmp_path: Path):  # type: ignore[no-untyped-def]
    with moto.mock_aws():
        settings = Settings(
            data_dir=tmp_path, s3_buckets="media", s3_region="us-east-1",
            s3_access_key_id="testing", s3_secret_access_key="testing",
            max_input_bytes=1000,
        )  # fmt: skip
        from mediaapp.storage import s3 as s3mod

        s3mod._client.cache_clear()
        client = s3mod.client(settings)
        client.create_bucket(Bucket="media")
        yield settings, client
        s3mod._client.cache_clear()


def test_size_limit_checked_before_a_byte_is_fetched(s3, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, client = s3
    client.put_object(Bucket="media", Key="big.mp4", Body=b"x" * 5000)
    client.put_object(Bucket="media", Key="empty.mp4", Body=b"")
    from mediaapp.storage import staging

    fetched = []
    client.meta.events.register("before-call.s3.GetObject", lambda **kw: fetched.append(1))
    with pytest.raises(LimitExceeded):
        staging.stage_input("s3://media/big.mp4", settings)
    with pytest.raises(EmptyInput):
        staging.stage_input("s3://media/empty.mp4", settings)
    with pytest.raises(InputNotFound):
        staging.stage_input("s3://media/missing.mp4", settings)
    assert not fetched
    assert not list(settings.scratch_dir.rglob("*.mp4"))


def test_publish_then_stage_round_trip_checks_sha256(s3, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, _ = s3
    from mediaapp.storage import open_store

    store = open_store("s3://media/out/", settings)
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc" * 100)
    obj = store.publish(src, "job/a.bin")
    assert obj.size == 300 and obj.sha256 and obj.url == "s3://media/out/job/a.bin"
    back = store.stage("job/a.bin", tmp_path / "b.bin", max_bytes=1000)
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes() and back.etag == obj.etag
    assert [o.key for o in store.list()] == ["job/a.bin"]
    store.delete(["job/a.bin"])
    assert store.stat("job/a.bin") is None


def test_missing_bucket_is_configuration_error(s3) -> None:  # type: ignore[no-untyped-def]
    settings, _ = s3
    from mediaapp.storage.s3 import S3Store

    store = S3Store(
        Settings(**{**settings.model_dump(), "s3_buckets": "media,gone"}),
        urls.ObjectUrl("gone", ""),
    )
    with pytest.raises(ConfigurationError):
        list(store.list())


def test_server_gone_is_retryable(tmp_path: Path) -> None:
    from mediaapp.storage import staging

    settings = Settings(
        data_dir=tmp_path, s3_buckets="media", s3_endpoint_url="http://127.0.0.1:9",
        s3_access_key_id="k", s3_secret_access_key="s",
    )  # fmt: skip
    with pytest.raises(StorageUnavailable) as err:
        staging.stage_input("s3://media/x.mp4", settings)
    assert err.value.retryable


def test_upload_events_and_submit_take_urls() -> None:
    from mediaapp.jobs.client import media_name
    from mediaapp.jobs.uploads import upload_to_job

    assert upload_to_job({"file": "s3://media/in/clip.mp4"})["name"] == "s3://media/in/clip.mp4"
    with pytest.raises(InputOutsideRoot):  # the test settings allow no bucket: refused here
        media_name("s3://media/in/clip.mp4")
