"""Unit tier: settings, routing, errors, progress. No broker, no ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery.backends.base import Backend
from kombu import Connection, Exchange, Queue

from mediaapp import errors
from mediaapp.jobs import routing
from mediaapp.jobs.progress import ProgressReporter
from mediaapp.media.command import Progress, parse_progress_block
from mediaapp.settings import Settings

pytestmark = pytest.mark.unit


def test_settings_defaults_are_embedded_and_derived(tmp_path: Path) -> None:
    s = Settings.from_env({"MEDIAAPP_DATA_DIR": str(tmp_path)})
    assert s.embedded and s.broker_url == "filesystem://"
    assert s.result_backend == f"file://{tmp_path / 'results'}"
    assert s.audit_log == tmp_path / "audit.jsonl"
    assert s.output_root == tmp_path / "outputs"


def test_settings_parse_types_and_reject_garbage(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "MEDIAAPP_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
            "MEDIAAPP_MAX_INPUT_BYTES": "1000",
            "MEDIAAPP_FFMPEG_TIMEOUT_S": "2.5",
            "MEDIAAPP_MEDIA_ROOT": str(tmp_path),
        }
    )
    assert not s.embedded
    assert s.max_input_bytes == 1000 and s.ffmpeg_timeout_s == 2.5
    assert s.media_root == tmp_path.resolve()
    with pytest.raises(errors.ConfigurationError, match="MEDIAAPP_MAX_INPUT_BYTES"):
        Settings.from_env({"MEDIAAPP_MAX_INPUT_BYTES": "lots"})


def test_every_task_route_has_an_explicit_key_that_its_queue_binds() -> None:
    queues = {q.name: q for q in routing.TASK_QUEUES}
    for name, route in routing.TASK_ROUTES.items():
        key = route["routing_key"]
        assert "#" not in key and "*" not in key, f"{name} publishes a pattern"
        assert key == name or key == "video." + name.split(".")[-1], "key names the task"
        prefix = queues[route["queue"]].routing_key.removesuffix("#")
        assert key.startswith(prefix)
        assert routing.AUDIT_QUEUE in route["declare"]


def test_task_queues_dead_letter_and_outlast_the_time_limit() -> None:
    from mediaapp.jobs.app import app

    for q in routing.TASK_QUEUES:
        assert q.queue_arguments["x-dead-letter-exchange"] == "media_dlx"
        assert q.queue_arguments["x-consumer-timeout"] > app.conf.task_time_limit * 1000
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit
    assert app.conf.task_acks_late and not app.conf.task_acks_on_failure_or_timeout
    assert routing.DEAD_LETTER_QUEUE.routing_key == "#"


def test_audit_queue_is_never_a_task_queue() -> None:
    from mediaapp.jobs.app import app

    names = {q.name for q in app.conf.task_queues}
    assert "audit_queue" not in names
    assert names == {"video_queue", "default_queue"}


def _routed(key: str) -> dict[str, int]:
    """Publish one message through Kombu's own topic routing (memory transport); count copies."""
    counts = {}
    with Connection("memory://") as conn:
        exchange = Exchange("media_exchange", type="topic")
        topology = [q for q in routing.TOPOLOGY if q.exchange == routing.MEDIA_EXCHANGE]
        queues = [Queue(q.name + key, exchange, routing_key=q.routing_key) for q in topology]
        for q in queues:
            q(conn.default_channel).declare()
        conn.Producer().publish({"x": 1}, exchange=exchange, routing_key=key, serializer="json")
        for q, orig in zip(queues, topology, strict=True):
            counts[orig.name] = q(conn.default_channel).queue_declare(passive=True).message_count
            q(conn.default_channel).delete()
    return counts


@pytest.mark.parametrize("key", ["video.transcode", "video.upload", "video.probe"])
def test_video_keys_reach_video_queue_and_audit(key: str) -> None:
    assert _routed(key) == {"video_queue": 1, "default_queue": 0, "audit_queue": 1}


@pytest.mark.parametrize(
    "name", ["task.started", "task.succeeded", "task.failed", "job.finished", "upload.accepted"]
)
def test_events_only_ever_reach_the_audit_queue(name: str) -> None:
    assert _routed(routing.event_key(name)) == {
        "video_queue": 0,
        "default_queue": 0,
        "audit_queue": 1,
    }


def test_user_login_is_audited_only() -> None:
    assert _routed("user.login") == {"video_queue": 0, "default_queue": 0, "audit_queue": 1}


def test_error_tree_is_shallow_and_typed() -> None:
    for cls in (
        errors.InputNotFound,
        errors.EmptyInput,
        errors.NotMedia,
        errors.LimitExceeded,
        errors.InputOutsideRoot,
        errors.UnknownProfile,
    ):
        assert issubclass(cls, errors.InvalidInput) and not cls.retryable
        assert cls.__doc__ and cls.code
    assert errors.TransientError.retryable
    assert errors.FFmpegKilled("x", returncode=-9).retryable
    assert not errors.FFmpegError("x", returncode=1).retryable
    assert errors.FFmpegTimeout("x").retryable and errors.FFmpegStalled("x").retryable
    for killed in (errors.FFmpegKilled, errors.FFmpegTimeout, errors.FFmpegStalled):
        assert issubclass(killed, errors.FFmpegError) and issubclass(killed, errors.TransientError)
        assert killed.exit_code == errors.TransientError.exit_code


@pytest.mark.parametrize("cls", [errors.NotMedia, errors.FFmpegError, errors.InputOutsideRoot])
def test_errors_survive_celerys_json_result_serializer(cls: type[errors.MediaError]) -> None:
    backend = Backend(app=__import__("mediaapp").app)
    stored = backend.prepare_exception(cls("clip.mp4: broken"), serializer="json")
    back = backend.exception_to_python(stored)
    assert type(back) is cls and str(back) == "clip.mp4: broken"


def test_progress_block_parsing() -> None:
    block = {"out_time_us": "2500000", "fps": "50.0", "speed": "4.2x", "progress": "continue"}
    p = parse_progress_block(block, duration_s=10.0)
    assert p == Progress(out_time_s=2.5, fps=50.0, speed=4.2, percent=25.0, done=False)
    end = parse_progress_block({"out_time_us": "N/A", "progress": "end"}, duration_s=10.0)
    assert end.percent == 100.0 and end.done
    assert parse_progress_block(block, duration_s=None).percent is None


def test_progress_reporter_throttles_and_computes_eta() -> None:
    sent: list[dict] = []
    now = [0.0]
    rep = ProgressReporter(sent.append, step="transcode", interval_s=0.5, clock=lambda: now[0])
    for i in range(10):  # ten updates within 0.45 s → one forwarded
        now[0] = i * 0.05
        rep(Progress(out_time_s=i, fps=25, speed=2.0, percent=i * 10.0, done=False))
    assert len(sent) == 1
    now[0] = 1.0
    rep(Progress(out_time_s=5.0, fps=25, speed=2.0, percent=50.0, done=False))
    assert sent[-1]["percent"] == 50.0 and sent[-1]["eta_s"] == 2.5  # 5 s left at 2x
    rep(Progress(out_time_s=10.0, fps=25, speed=2.0, percent=100.0, done=True))  # never throttled
    assert sent[-1]["eta_s"] == 0.0 and len(sent) == 3


def test_progress_never_moves_backwards() -> None:
    sent: list[dict] = []
    rep = ProgressReporter(sent.append, step="transcode", interval_s=0)
    for percent in (10.0, 95.3, 94.2, 97.0):  # ffmpeg's out_time can dip as streams flush
        rep(Progress(out_time_s=percent, fps=25, speed=1.0, percent=percent, done=False))
    assert [m["percent"] for m in sent] == [10.0, 95.3, 95.3, 97.0]


def test_progress_reporter_survives_a_failing_update() -> None:
    def boom(meta: dict) -> None:
        raise ConnectionError("broker hiccup")

    rep = ProgressReporter(boom, step="transcode")
    rep(Progress(out_time_s=1, fps=1, speed=1, percent=1.0, done=False))  # must not raise
    assert rep.sent == 0


def test_progress_check_may_stop_the_encode() -> None:
    from mediaapp.errors import JobCancelled

    def cancelled() -> None:
        raise JobCancelled("job x was cancelled")

    rep = ProgressReporter(lambda meta: None, step="transcode", check=cancelled)
    with pytest.raises(JobCancelled):
        rep(Progress(out_time_s=1, fps=1, speed=1, percent=1.0, done=False))


def test_cancel_flag_round_trips_on_the_file_result_backend(tmp_path: Path) -> None:
    from celery import Celery

    from mediaapp.errors import JobCancelled
    from mediaapp.jobs.cancel import is_cancelled, raise_if_cancelled
    from mediaapp.jobs.job import cancel_key

    app = Celery(backend=f"file://{tmp_path}")
    assert not is_cancelled(app.backend, "job1")
    app.backend.set(cancel_key("job1"), b"1")
    assert is_cancelled(app.backend, "job1") and not is_cancelled(app.backend, "job2")
    with pytest.raises(JobCancelled):
        raise_if_cancelled(app.backend, "job1")
