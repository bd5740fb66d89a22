"""The command line: errors become a message and an exit code; a real job through the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mediaapp.ops.cli import main

from ..conftest import BIN, Proc, child_env


@pytest.mark.unit
def test_outside_the_media_root_is_refused_before_publishing(capsys: pytest.CaptureFixture) -> None:
    assert main(["submit", "/etc/passwd"]) == 65
    err = capsys.readouterr().err
    assert "InputOutsideRoot" in err and "/etc/passwd" in err


@pytest.mark.unit
def test_unknown_profile_exit_code(capsys: pytest.CaptureFixture) -> None:
    assert main(["submit", "clip.mp4", "--profile", "8k-hdr"]) == 65
    assert "unknown profile '8k-hdr'" in capsys.readouterr().err


@pytest.mark.unit
def test_settings_are_printed(capsys: pytest.CaptureFixture, media_root: Path) -> None:
    assert main(["settings"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["media_root"] == str(media_root) and shown["broker_url"].startswith("amqp://")


@pytest.mark.integration
def test_submit_wait_status_and_trail(
    video_worker: Proc, audit_consumer: Path, tmp_path: Path
) -> None:
    env = child_env(MEDIAAPP_AUDIT_LOG=str(audit_consumer))
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"file": "clip.mp4", "profile": "web-480"}))
    out = subprocess.run(
        [str(BIN / "mediaapp"), "submit", "--spec", str(spec), "--wait", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)  # JSON only on stdout; the job id went to stderr
    job_id = manifest["job_id"]
    assert job_id in out.stderr
    assert manifest["job_id"] == job_id and manifest["input"] == "clip.mp4"
    assert manifest["profile"] == "web-480" and manifest["outputs"][0]["height"] == 360
    status = subprocess.run(
        [str(BIN / "mediaapp"), "status", job_id], env=env, capture_output=True, text=True
    )
    assert status.returncode == 0 and f"{job_id} SUCCESS" in status.stdout
    trail = subprocess.run(
        [str(BIN / "mediaapp"), "audit", "--job", job_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "video.transcode" in trail.stdout and "task.started" in trail.stdout


@pytest.mark.integration
def test_audit_follow_tails_the_log_live(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_text(
        json.dumps({"ts": "2026-01-01T00:00:00+00:00", "kind": "event", "name": "old"}) + "\n"
    )
    proc = subprocess.Popen(
        [str(BIN / "mediaapp"), "audit", "--follow"],
        env=child_env(MEDIAAPP_AUDIT_LOG=str(log)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # It says when it follows (however long the start took): lines from then on show.
        assert "following" in proc.stderr.readline()  # type: ignore[union-attr]
        with open(log, "a") as fh:
            record = {
                "ts": "2026-01-01T00:00:01.5+00:00",
                "kind": "event",
                "name": "job.finished",
                "job_id": "j1",
                "task_id": "t1",
            }
            fh.write(json.dumps(record) + "\n")
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert "job.finished" in line and "job=j1" in line
        assert "old" not in line  # it follows from the end, like tail -f
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.unit
@pytest.mark.parametrize("wait", [True, False])
def test_submit_json_prints_json_only_on_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, wait: bool
) -> None:
    """Scripts pipe ``submit --json`` into a JSON parser: the job id goes to stderr."""
    import mediaapp.jobs.client
    import mediaapp.ops.cli

    class FakeJob:
        id = "job-123"

    monkeypatch.setattr(
        mediaapp.jobs.client, "submit", lambda path, profile, priority=None: FakeJob()
    )
    manifest = {"job_id": "job-123", "outputs": []}
    monkeypatch.setattr(mediaapp.ops.cli, "wait_with_progress", lambda job, timeout: manifest)
    args = ["submit", "clip.mp4", "--json", *(["--wait"] if wait else [])]
    assert main(args) == 0
    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    assert shown == manifest if wait else shown == {"job_id": "job-123"}
    assert "job-123" in captured.err


@pytest.mark.unit
def test_submit_priority_reaches_the_job_and_is_bounded(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import mediaapp.jobs.client

    asked: list[int | None] = []

    class FakeJob:
        id = "job-7"

    def fake_submit(path: str, profile: str, priority: int | None = None) -> FakeJob:
        asked.append(priority)
        return FakeJob()

    monkeypatch.setattr(mediaapp.jobs.client, "submit", fake_submit)
    assert main(["submit", "clip.mp4", "--priority", "9"]) == 0
    assert main(["submit", "clip.mp4"]) == 0
    assert asked == [9, None]
    assert main(["submit", "clip.mp4", "--priority", "10"]) == 2  # 0..9 only
    assert "10 is not in the range 0<=x<=9" in capsys.readouterr().err


def test_submit_subtitles_reach_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    import mediaapp.jobs.client

    asked: list[object] = []

    class FakeJob:
        id = "job-8"

    def fake_submit(path: str, profile: str, priority: int | None = None, **kw: object) -> FakeJob:
        asked.append(kw.get("subtitles"))
        return FakeJob()

    monkeypatch.setattr(mediaapp.jobs.client, "submit", fake_submit)
    args = ["submit", "clip.mp4", "--subtitles", "subs/a.srt:es", "--subtitles", "b.vtt"]
    assert main(args) == 0
    assert main(["submit", "clip.mp4"]) == 0
    assert asked == [
        [{"path": "subs/a.srt", "language": "es"}, {"path": "b.vtt", "language": None}],
        None,
    ]
