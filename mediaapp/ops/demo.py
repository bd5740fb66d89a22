"""``mediaapp demo``: the whole pipeline on one machine, started and stopped by one command.

It starts ``celery -A mediaapp worker -Q video_queue`` and the audit consumer as separate
processes (exactly as a user would), submits a sample, shows progress, prints the manifest
and the job's audit trail, then stops both. With no variable set this runs on the embedded
broker (Kombu's filesystem transport) and needs no server at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from mediaapp.errors import MediaError
from mediaapp.media.profiles import get_profile
from mediaapp.ops.audit import job_trail
from mediaapp.ops.console import console, print_manifest, print_trail, wait_with_progress
from mediaapp.settings import Settings, get_settings

REPO_SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "clip.mp4"


#: Seconds the demo's worker and audit consumer get to exit after the job ended.
STOP_GRACE_S = 0.3
#: How often the demo looks for the job's trail in the audit log (a small file, cheap to read).
TRAIL_POLL_S = 0.05


def worker_argv(
    queue: str = "video_queue",
    *,
    concurrency: int = 1,
    level: str = "info",
    name: str = "worker",
    cli: bool = True,
) -> list[str]:
    """``celery -A mediaapp worker -Q <queue>`` from this environment, with a unique node name;
    without ``cli`` the same worker through ``mediaapp.ops.worker_main`` (a faster start)."""
    celery = [str(Path(sys.executable).parent / "celery"), "-A", "mediaapp", "worker"]
    start = celery if cli else [sys.executable, "-m", "mediaapp.ops.worker_main"]
    node = f"{name}-{uuid.uuid4().hex[:6]}@%h"
    return [*start, "-Q", queue, "-c", str(concurrency), "-l", level, "-n", node]


def demo_codecs(profile: str, settings: Settings) -> str:
    """The codecs the demo's job encodes (``h264,hevc,av1`` for a multi-codec ladder): its
    worker proves only their encoders (the others' test encodes were ~0.5 s of its boot)."""
    try:
        return ",".join(get_profile(profile, settings.profiles_dir).codecs)
    except MediaError:  # the worker refuses the job, typed: H.264 is its route then
        return "h264"


def _start(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
    # Started in the log folder, not the caller's: `celery -A mediaapp` imports from its
    # working directory first, where a folder named mediaapp (the default data folder, when
    # XDG_DATA_HOME is the working directory) would shadow the package.
    return subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        cwd=log_path.parent,
    )  # fmt: skip


def _stop(*stops: tuple[subprocess.Popen[bytes], signal.Signals, float]) -> None:
    """Signal every process at once, then wait for each (SIGKILL after its timeout)."""
    for proc, sig, _ in stops:
        if proc.poll() is None:
            proc.send_signal(sig)
    for proc, _, timeout in stops:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_demo(
    file: Path | None, *, profile: str = "web", timeout: float = 120.0
) -> dict[str, object]:
    """Run the demo and return its figures (used by the README and the cold-start benchmark)."""
    from mediaapp.jobs.app import app
    from mediaapp.jobs.client import Job
    from mediaapp.jobs.job import send

    t0 = time.monotonic()
    settings = get_settings()
    source = (file or REPO_SAMPLE).resolve()
    if not source.is_file():
        raise SystemExit(f"demo: no such file {source}")
    # The demo serves the sample's own folder unless the media root already holds it.
    media_root = (
        settings.media_root if source.is_relative_to(settings.media_root) else source.parent
    )
    name = str(source.relative_to(media_root))
    env = {**os.environ, "MEDIAAPP_MEDIA_ROOT": str(media_root)}
    env.setdefault("MEDIAAPP_CAPABILITIES", demo_codecs(profile, settings))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logs = settings.data_dir / "demo-logs"
    logs.mkdir(exist_ok=True)
    console.print(
        f"[bold]broker[/bold] {settings.broker_url.split('@')[-1]}  "
        f"[bold]data[/bold] {settings.data_dir}"
    )
    audit = _start([sys.executable, "-m", "mediaapp", "audit"], env, logs / "audit.log")
    worker = _start(worker_argv(name="demo", cli=False), env, logs / "worker.log")
    console.print(
        f"started worker (pid {worker.pid}) and audit consumer (pid {audit.pid}); logs in {logs}"
    )
    spawned = time.monotonic()
    ended = False
    try:
        job_id = uuid.uuid4().hex
        submitted, submitted_wall = time.monotonic(), time.time()
        send(app, job_id=job_id, name=name, profile=profile)
        job = Job(job_id, app=app, name=name)
        console.print(f"submitted job {job_id}: {name} → profile {profile}")
        manifest = wait_with_progress(job, timeout)
        pipeline_s = time.monotonic() - submitted
        print_manifest(manifest)
        trail = _wait_for_trail(settings.audit_log, job_id, timeout=15)
        print_trail(trail)
        audited = time.monotonic()
        # Ended for good once job.finished is on disk: the worker's events are all out.
        ended = any(r.get("name") == "job.finished" for r in trail)
    finally:
        # Once the job has ended and its trail is on disk, the worker holds nothing: it gets a
        # cold shutdown (SIGQUIT) and, after STOP_GRACE_S, SIGKILL. A worker on the embedded
        # transport notices SIGQUIT only after its 2 s drain timeout and then spends ~2 s more
        # exiting (bench coldstart: 3.7-6.4 s of a 6.8 s demo). Otherwise (a timeout, Ctrl+C)
        # it gets the full grace to put back what it fetched. The audit consumer always gets
        # it: it may hold records fetched and not yet written (a slow machine), and SIGTERM
        # makes it flush them.
        _stop((worker, signal.SIGQUIT, STOP_GRACE_S if ended else 15.0),
              (audit, signal.SIGTERM, 15.0))  # fmt: skip
    encode_s = float(manifest["encode_s"])
    first_step = min(
        (float(r["body"]["ts"]) for r in trail if r.get("name") == "task.started"),  # type: ignore[index]
        default=submitted_wall,
    )
    figures = {
        "job_id": job_id,
        "pipeline_s": round(pipeline_s, 3),
        "ffmpeg_s": encode_s,
        "total_s": round(time.monotonic() - t0, 3),
        "audit_records": len(trail),
        # Where the time goes: set-up before the processes start, submit until the first
        # step starts (worker boot on a cold machine), the job itself, audit, shutdown.
        "phases_s": {
            "setup": round(spawned - t0, 3),
            "until_first_step": round(first_step - submitted_wall, 3),
            "job": round(pipeline_s, 3),
            "audit_trail": round(audited - submitted - pipeline_s, 3),
            "shutdown": round(time.monotonic() - audited, 3),
        },
        "commands": manifest.get("commands", []),
    }
    console.print(
        f"submit → manifest {figures['pipeline_s']} s, of which ffmpeg {encode_s} s; "
        f"demo wall time {figures['total_s']} s; {len(trail)} audit records for the job"
    )
    return figures


def _wait_for_trail(log: Path, job_id: str, timeout: float) -> list[dict[str, object]]:
    """The job's audit records once its ``job.finished`` event is on disk."""
    deadline = time.monotonic() + timeout
    trail = job_trail(log, job_id)
    while time.monotonic() < deadline:
        if any(r.get("name") == "job.finished" for r in trail):
            break
        time.sleep(TRAIL_POLL_S)
        trail = job_trail(log, job_id)
    return trail
