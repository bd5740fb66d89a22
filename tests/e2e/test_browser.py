"""In a real browser, as an operator sees it: headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) logs into Flower and opens a job report.
Screenshots are saved under test-artifacts/."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mediaapp.errors import MediaError
from mediaapp.jobs.client import submit
from mediaapp.ops.report import write_report
from mediaapp.settings import get_settings

from ..conftest import REPO, Proc, chromium_driver, worker_cmd
from .test_flower import AUTH, free_port, start_flower

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    driver = chromium_driver(tmp_path / "chromium", "--window-size=1400,1000")
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def wait_until(check: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out in the browser")


def test_flower_lists_job_steps_and_shows_the_error(
    browser: object, spawn: Callable[..., Proc], clean_queues: None, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    port = free_port()
    start_flower(spawn, port, tmp_path)
    cmd, _ = worker_cmd("video_queue", "-c", "1")
    spawn(cmd, name="worker")
    good, bad = submit("clip.mp4"), submit("small-pdf.pdf")
    good.wait(timeout=90)
    with pytest.raises(MediaError):
        bad.wait(timeout=60)
    token = base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})  # type: ignore[attr-defined]
    driver.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
    )
    driver.get(f"http://127.0.0.1:{port}/tasks")  # type: ignore[attr-defined]

    def listed() -> bool:
        text = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
        steps = (good.id, bad.id)  # one task per job: the PDF fails at the transcode's probe
        return all(s in text for s in steps) and "SUCCESS" in text and "FAILURE" in text

    wait_until(listed)
    driver.save_screenshot(str(ARTIFACTS / "flower-tasks.png"))  # type: ignore[attr-defined]
    body = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    assert "video.transcode" in body and "clip.mp4" in body
    driver.get(f"http://127.0.0.1:{port}/task/{bad.id}")  # type: ignore[attr-defined]
    wait_until(lambda: "NotMedia" in driver.page_source)  # type: ignore[attr-defined]
    assert "small-pdf.pdf" in driver.page_source  # type: ignore[attr-defined]
    driver.save_screenshot(str(ARTIFACTS / "flower-failed-task.png"))  # type: ignore[attr-defined]


def test_report_plays_the_video_and_shows_the_images(
    browser: object, video_worker: Proc, audit_consumer: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    job = submit("clip.mp4")
    job.wait(timeout=90)
    wait_until(lambda: "job.finished" in audit_consumer.read_text())
    report = write_report(job.id, get_settings(), audit_log=audit_consumer)
    driver.get(report.as_uri())  # type: ignore[attr-defined]
    state = wait_until(
        lambda: driver.execute_script(  # type: ignore[attr-defined]
            "const v = document.getElementById('rendition');"
            "return v && v.readyState >= 2 ? [v.readyState, v.videoWidth, v.duration] : null;"
        )
    )
    assert state[1] == 640 and abs(state[2] - 4.0) < 0.1  # type: ignore[index]
    images = driver.find_elements(By.TAG_NAME, "img")  # type: ignore[attr-defined]
    assert images and all(
        driver.execute_script("return arguments[0].naturalWidth", img) > 0  # type: ignore[attr-defined]
        for img in images
    )
    timeline = driver.find_element(By.ID, "timeline").text  # type: ignore[attr-defined]
    assert "task.started" in timeline and "job.finished" in timeline
    driver.save_screenshot(str(ARTIFACTS / "report.png"))  # type: ignore[attr-defined]
