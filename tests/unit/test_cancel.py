"""The cancel flag in the result backend."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit


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
