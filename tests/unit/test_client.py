"""The client's Job against a scripted result backend (no broker, no worker)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from mediaapp.jobs.client import Job
from mediaapp.jobs.progress import PROGRESS


def scripted_app(metas: list[dict[str, Any]]) -> Celery:
    """An app whose backend answers each read with the next meta (the last one repeats)."""
    app = Celery("client-test", broker="memory://", backend="cache+memory://")
    reads = iter(metas)
    last: dict[str, Any] = {}

    def get_task_meta(task_id: str, cache: bool = True) -> dict[str, Any]:
        nonlocal last
        last = next(reads, last)
        return dict(last)

    app.backend.get_task_meta = get_task_meta  # type: ignore[method-assign]
    return app


def test_wait_never_pairs_a_progress_state_with_the_manifest() -> None:
    """A job ending between two reads gave on_progress the manifest (CI: KeyError 'step')."""
    running = {"status": PROGRESS, "result": {"job_id": "j", "step": "transcode", "percent": 40.0}}
    done = {"status": "SUCCESS", "result": {"job_id": "j", "outputs": []}}
    app = scripted_app([running, done, done, done])
    seen: list[dict[str, Any]] = []
    manifest = Job("j", app=app).wait(timeout=5, interval=0, on_progress=seen.append)
    assert manifest == done["result"]
    assert seen and all(m["step"] == "transcode" for m in seen), seen


def test_progress_of_an_ended_job_is_none() -> None:
    done = {"status": "SUCCESS", "result": {"job_id": "j", "step": "x"}}
    assert Job("j", app=scripted_app([done])).progress is None
