"""Test tiers and the shared fixtures.

The test environment (``MEDIAAPP_*``) is set by :func:`pytest_configure`, which runs before
test modules are collected, so before they import mediaapp (settings are read from the
environment once per process), and not when this module is imported. Integration tests use
their own RabbitMQ vhost (``mediaapp-test``, or ``MEDIAAPP_TEST_VHOST``) and Redis database 15
(or ``MEDIAAPP_TEST_REDIS_DB``), so they never touch a developer's queues.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
CORPUS = REPO.parent / "shared" / "corpus"
BIN = Path(sys.executable).parent
# Overridable so two test runs on one machine (two checkouts) keep out of each other's way.
RABBIT_VHOST = os.environ.get("MEDIAAPP_TEST_VHOST", "mediaapp-test")
RABBIT_URL = f"amqp://guest:guest@127.0.0.1:5672/{RABBIT_VHOST}"
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('MEDIAAPP_TEST_REDIS_DB', '15')}"

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mediaapp-tests-"))
MEDIA_ROOT = _SESSION_DIR / "media"
DATA_DIR = _SESSION_DIR / "data"

#: What every test process (and, through child_env, every child process) sees; None = unset.
TEST_ENV: dict[str, str | None] = {
    "MEDIAAPP_BROKER_URL": RABBIT_URL,
    "MEDIAAPP_RESULT_BACKEND": REDIS_URL,
    "MEDIAAPP_DATA_DIR": str(DATA_DIR),
    "MEDIAAPP_MEDIA_ROOT": str(MEDIA_ROOT),
    "MEDIAAPP_FFMPEG": None,
}
_SAVED_ENV: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Point mediaapp at the test broker, backend and folders, before any test module loads."""
    for name, value in TEST_ENV.items():
        _SAVED_ENV[name] = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give the environment back as it was (pytest run in-process, e.g. pytest.main())."""
    for name, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _fill_media_root() -> None:
    MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
    for src in SAMPLES.glob("*.m*4*"):
        shutil.copy(src, MEDIA_ROOT / src.name)
    if CORPUS.is_dir():
        for src in CORPUS.iterdir():
            if src.suffix != ".md":
                shutil.copy(src, MEDIA_ROOT / src.name)


_fill_media_root()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus of real media files (required: CI has it beside the clone)."""
    if not (CORPUS / "ffmpeg-python-in1.mp4").is_file():
        pytest.fail(f"shared corpus missing at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def media_root() -> Path:
    """The media root every test process and worker uses (samples + corpus copied in)."""
    return MEDIA_ROOT


@pytest.fixture
def ffmpeg_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ffmpeg command line this process runs from here on (counted at command.run)."""
    from mediaapp.media import command

    calls: list[str] = []
    real_run = command.run

    def counting(stream: Any, **kwargs: Any) -> Any:
        result = real_run(stream, **kwargs)
        calls.append(result.cmd)
        return result

    monkeypatch.setattr(command, "run", counting)
    return calls


def _rabbit_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def rabbitmq() -> str:
    """The test vhost on the real RabbitMQ, created if needed; fails (not skips) when down."""
    if not _rabbit_up():
        pytest.fail("RabbitMQ is not running on 127.0.0.1:5672 (./run test starts it)")
    # A fresh vhost per session: queues declared by older code (other arguments) would make
    # every declare fail with PRECONDITION_FAILED, and leftovers would skew the counts.
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", RABBIT_VHOST], capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "add_vhost", RABBIT_VHOST], capture_output=True, check=True
    )
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", RABBIT_VHOST, "guest", ".*", ".*", ".*"],
        capture_output=True,
        check=True,
    )
    return RABBIT_URL


@pytest.fixture
def clean_queues(rabbitmq: str) -> Iterator[None]:
    """Purge the test vhost's queues before a test, so counts start at zero."""
    from kombu import Connection

    from mediaapp.jobs import routing

    with Connection(rabbitmq) as conn:
        routing.declare_topology(conn)
        for q in routing.TOPOLOGY:
            q(conn.default_channel).purge()
    yield


def queue_depth(url: str, name: str) -> tuple[int, int]:
    """(messages, consumers) of a queue, asked of the broker directly."""
    from kombu import Connection

    with Connection(url) as conn:
        _, messages, consumers = conn.default_channel.queue_declare(name, passive=True)
        return messages, consumers


class Proc:
    """A child process started by a test, with its log file."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.cmd = cmd
        self.log = log
        fh = open(log, "ab")  # noqa: SIM115
        self.popen = subprocess.Popen(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
        fh.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not seen from {self.cmd}:\n{self.text()[-3000:]}")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
                self.popen.wait(timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()

    def kill(self) -> None:
        """SIGKILL the whole process group (worker and its pool children) at once."""
        self.stop(signal.SIGKILL)


def wait_for(pred: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    """Poll ``pred`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def child_env(**overrides: str) -> dict[str, str]:
    """The environment a child process gets: ours, the venv first on PATH, and overrides."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(overrides)
    return env


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start processes for a test; every one is stopped when the test ends."""
    procs: list[Proc] = []

    def start(cmd: list[str], env: dict[str, str] | None = None, name: str = "proc") -> Proc:
        proc = Proc(cmd, env or child_env(), tmp_path / f"{name}-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


def worker_cmd(queue: str = "video_queue", *extra: str) -> tuple[list[str], str]:
    """``celery -A mediaapp worker -Q <queue>`` exactly, plus a unique node name."""
    node = f"t{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    return [str(BIN / "celery"), "-A", "mediaapp", "worker", "-Q", queue, "-n", node, *extra], node


@pytest.fixture
def video_worker(spawn: Callable[..., Proc], clean_queues: None) -> Proc:
    """A real worker on video_queue (one pool process), ready to take jobs."""
    cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    proc = spawn(cmd, name="worker")
    proc.wait_for("ready.", timeout=60)
    return proc


@pytest.fixture
def audit_consumer(
    spawn: Callable[..., Proc], clean_queues: None, tmp_path: Path
) -> Iterator[Path]:
    """``mediaapp audit`` in its own process, writing to a fresh log; yields the log path."""
    log = tmp_path / "audit.jsonl"
    proc = spawn([str(BIN / "mediaapp"), "audit"], child_env(MEDIAAPP_AUDIT_LOG=str(log)), "audit")
    proc.wait_for("audit consumer ready", timeout=30)
    yield log


def long_clip(media_root: Path, seconds: int = 30) -> str:
    """A 720p clip with audio, long enough to kill or cancel a worker in mid-encode (cached)."""
    from bench.overhead import make_clip

    name = f"long-{seconds}s.mp4"
    if not (media_root / name).exists():
        make_clip(media_root / name, "1280x720", seconds, preset="ultrafast")
    return name


def chromium_driver(user_dir: Path, *extra_flags: str, log_console: bool = False) -> Any:
    """Debian's Chromium under Selenium, headless, with the flags this closed network needs
    (no background fetches, no component updates) and autoplay allowed; fails when absent."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver_bin):
        pytest.fail("chromium and chromium-driver are not installed (./run test installs them)")
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download anything
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={user_dir}",
                 *extra_flags):  # fmt: skip
        options.add_argument(flag)
    if log_console:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_bin), options=options)
