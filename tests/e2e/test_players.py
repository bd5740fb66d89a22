"""Real players on our outputs: hls.js, dash.js and Shaka Player (pinned in
tests/players/package.json, installed by ``./run test`` with ``npm ci``) and Chromium's own
<video>, in Debian's headless Chromium, the outputs served over HTTP with real MIME types.

For each case: the player loads with no error event, lists the renditions our manifest
promises, reaches 5 s (or the end), has no buffer hole at the start (no hole skipped, no
seek of its own, the buffer starting at 0), and plays each rendition when forced to it.
Every playlist, MPD and WebVTT file is parsed with third-party parsers (m3u8, mpegdash,
webvtt-py) as well.

A small matrix runs by default (marker ``players``). The full one (every profile on the
corpus clip and on generated 1080p, portrait, rotated, silent, 25 fps, 7.27 s and chunked
sources, each ladder in two players) is marked ``players_full`` and skipped unless
``MEDIAAPP_PLAYERS_FULL=1``::

    MEDIAAPP_PLAYERS_FULL=1 pytest tests/e2e/test_players.py -m players_full
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mediaapp.media import steps
from mediaapp.settings import Settings

from ..conftest import REPO, chromium_driver
from ..media.test_chunking import run_chunked
from ..media_sources import generate
from ..player_checks import parse_with_third_party

PLAYERS = REPO / "tests" / "players"
FULL = os.environ.get("MEDIAAPP_PLAYERS_FULL") == "1"
pytestmark = [pytest.mark.media, pytest.mark.players]

#: Generated sources: small and short, so the full matrix stays in minutes.
SOURCES: dict[str, dict[str, Any]] = {
    "ladder": {"size": "854x480", "seconds": 3},  # two rungs: 480p and 360p
    "1080p": {"size": "1920x1080", "seconds": 3},
    "portrait": {"size": "720x1280", "seconds": 3},
    "rotated": {"size": "640x360", "seconds": 3, "rotate": 90},
    "silent": {"size": "640x360", "seconds": 3, "audio": False},
    "25fps": {"size": "640x360", "seconds": 3, "rate": 25},
    "7.27s": {"size": "320x180", "seconds": 7.27},
    "chunked": {"size": "640x360", "seconds": 8, "gop": 30},  # encoded in 2 s chunks
}
PLAYERS_OF = {"web": ["native"], "audio": ["native"], "hls": ["hls", "shaka"],
              "dash": ["dash", "shaka"]}  # fmt: skip
SMALL = {
    ("corpus", "web", "native"), ("corpus", "hls", "hls"), ("corpus", "dash", "dash"),
    ("corpus", "audio", "native"), ("ladder", "hls", "shaka"), ("ladder", "dash", "shaka"),
}  # fmt: skip


def _cases() -> list[Any]:
    cases = []
    for source in ["corpus", *SOURCES]:
        for profile, players in PLAYERS_OF.items():
            if profile == "audio" and (source == "silent" or source == "chunked"):
                continue  # no audio to play; audio jobs are never chunked
            for player in players:
                case = (source, profile, player)
                marks: list[Any] = [pytest.mark.players_full, pytest.mark.skipif(
                    not FULL, reason="full player matrix: MEDIAAPP_PLAYERS_FULL=1")]  # fmt: skip
                cases.append(pytest.param(*case, id="-".join(case),
                                          marks=[] if case in SMALL else marks))  # fmt: skip
    return cases


class MediaHandler(SimpleHTTPRequestHandler):
    """Static files with the MIME types players check, and byte ranges for <video>."""

    extensions_map = {  # noqa: RUF012 - the base class declares it a plain dict
        **SimpleHTTPRequestHandler.extensions_map,
        ".ts": "video/mp2t", ".m3u8": "application/vnd.apple.mpegurl",
        ".mpd": "application/dash+xml", ".m4s": "video/iso.segment", ".mp4": "video/mp4",
        ".m4a": "audio/mp4", ".mp3": "audio/mpeg", ".vtt": "text/vtt",
        ".js": "text/javascript", ".html": "text/html",
    }  # fmt: skip

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        spec = self.headers.get("Range", "")
        if not spec.startswith("bytes=") or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, _, last = spec[6:].partition("-")
        start = int(first) if first else max(0, size - int(last))
        end = min(int(last), size - 1) if first and last else size - 1
        fh = open(path, "rb")  # noqa: SIM115 - closed by copyfile's caller
        fh.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        return fh

    def copyfile(self, source: Any, outputfile: Any) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        while remaining > 0:
            block = source.read(min(1 << 16, remaining))
            if not block:
                break
            outputfile.write(block)
            remaining -= len(block)
        return None

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A directory served on 127.0.0.1: the player page, the players, and the outputs."""
    if not (PLAYERS / "node_modules" / "hls.js").is_dir():
        pytest.fail("player libraries missing: `npm ci` in tests/players (./run test does it)")
    root = tmp_path_factory.mktemp("served")
    (root / "node_modules").symlink_to(PLAYERS / "node_modules")
    shutil.copy(PLAYERS / "player.html", root / "player.html")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(MediaHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = chromium_driver(tmp_path_factory.mktemp("chromium"), "--mute-audio", log_console=True)
    yield driver
    driver.quit()


_jobs: dict[tuple[str, str], dict[str, Any]] = {}


def encoded(source: str, profile: str, root: Path, media_root: Path) -> dict[str, Any]:
    """The manifest of ``profile`` on ``source``, encoded once per module run."""
    key = (source, profile)
    if key not in _jobs:
        settings = Settings(data_dir=root / "data", media_root=media_root, ffmpeg_threads=2)
        if source == "corpus":
            name = "ffmpeg-python-in1.mp4"
        else:
            name = generate(media_root, f"player-{source}.mp4", **SOURCES[source])
        job = f"{source}-{profile}".replace(".", "_")
        if source == "chunked":
            chunked = Settings(data_dir=settings.data_dir, media_root=media_root,
                               chunking="always", chunk_s=2, ffmpeg_threads=2)  # fmt: skip
            _jobs[key] = run_chunked(job, name, profile, chunked)
        else:
            _jobs[key] = steps.run(job, name, profile, settings)
    return _jobs[key]


def targets(manifest: dict[str, Any]) -> tuple[list[Path], list[tuple[int, int]]]:
    """What a player opens, and the renditions (width, height) it must list."""
    outs = manifest["outputs"]
    kind = manifest["kind"]
    if kind == "mp4":
        video = next(o for o in outs if o["kind"] == "video")
        return [Path(video["path"])], [(video["width"], video["height"])]
    if kind == "audio":
        return [Path(o["path"]) for o in outs], []
    main = next(o for o in outs if o["kind"] in ("hls-master", "dash-mpd"))
    rungs = [o for o in outs if o["kind"] in ("hls-rendition", "dash-representation")]
    return [Path(main["path"])], [(r["width"], r["height"]) for r in rungs]


def wait(what: str, check: Callable[[], Any], report: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {report()}")


@pytest.mark.parametrize(("source", "profile", "player"), _cases())
def test_player(
    source: str,
    profile: str,
    player: str,
    served: tuple[Path, str],
    chromium: Any,
    media_root: Path,
) -> None:
    root, base = served
    manifest = encoded(source, profile, root, media_root)
    parse_with_third_party(manifest)
    entries, promised = targets(manifest)
    for entry in entries:
        url = f"{base}/{quote(str(entry.relative_to(root)))}"
        page = f"{base}/player.html?player={player}&src={quote(url, safe='')}"
        chromium.get(page)
        listed = play_checks(chromium, promised, manifest["source"]["duration_s"])
        for index in range(len(listed) if len(listed) > 1 else 0):  # each rendition, forced
            kbps = listed[index][2] // 1000 + 1
            chromium.get(f"{page}&force={index}&kbps={kbps}")
            play_checks(chromium, promised, manifest["source"]["duration_s"], listed[index][:2])


def play_checks(
    driver: Any,
    promised: list[tuple[int, int]],
    duration: float,
    forced: tuple[int, int] | None = None,
) -> list[tuple[int, int, int]]:
    """Load, list the renditions, play to 5 s (or the end) with no error and no hole at the
    start, showing the ``forced`` rendition throughout if one is; the renditions listed
    (width, height, bandwidth)."""

    def probe() -> dict[str, Any]:
        return driver.execute_script("return window.probe ? window.probe() : {}") or {}

    def report() -> str:
        logs = [e["message"][:300] for e in driver.get_log("browser")][-8:]
        return f"{probe()} console: {logs}"

    wait("the manifest", lambda: (s := probe()).get("ready") or s.get("errors"), report, 30)
    state = probe()
    assert not state["errors"], report()
    listed = [(r["width"], r["height"], r["bandwidth"]) for r in state["renditions"]]
    if promised:
        assert sorted(r[:2] for r in listed) == sorted(promised), report()
    # Twice as fast to save time, but 1080p in real time: software decoding on two shared
    # cores falls behind at 2x and hls.js rightly reports the stall.
    rate = 1 if max((w * h for w, h in promised), default=0) > 1280 * 720 else 2
    driver.execute_script(f"const v = document.getElementById('v'); v.playbackRate = {rate};"
                          "v.play()")  # fmt: skip
    goal = min(5.0, duration - 0.3)
    sizes = set()

    def played() -> bool:
        s = probe()
        if s["time"] > 0.1 and s["width"]:
            sizes.add((s["width"], s["height"]))
        return bool(s["errors"] or s["time"] >= goal or s["ended"])

    wait(f"playback to {goal:.1f} s", played, report, 45)
    state = probe()
    assert not state["errors"], report()
    # At the start: a player jumping a hole seeks to where the buffer begins (dash.js may
    # seek to the very end to finish, which is no hole).
    assert not state["holes"] and not [t for t in state["seeks"] if t < 1], report()
    assert state["buffered"] and state["buffered"][0][0] < 0.01, report()
    if forced is not None:
        assert sizes == {forced}, f"forced {forced}, shown {sizes}: {report()}"
    return listed
