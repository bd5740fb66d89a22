"""The app's task message factory (mediaapp/jobs/app.py): what each publish carries and costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mediaapp.jobs import app as app_module
from mediaapp.jobs import routing
from mediaapp.jobs.app import AMQP, create_app
from mediaapp.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "sent"), [("media.ping", False), ("video.transcode", True)])
def test_flowers_sent_event_is_not_made_for_short_tasks(name: str, sent: bool) -> None:
    app = create_app(Settings(broker_url="memory://"))
    app.conf.task_send_sent_event = True
    assert isinstance(app.amqp, AMQP)
    message = app.amqp.create_task_message("id1", name, (), {}, create_sent_event=True)
    assert (message.sent_event is not None) is sent


def test_the_topology_is_declared_once_per_channel_not_per_publish(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    declared: list[str] = []
    real = app_module.maybe_declare

    def counting(entity: Any, channel: Any, **kwargs: Any) -> Any:
        declared.append(entity.name)
        return real(entity, channel, **kwargs)

    monkeypatch.setattr(app_module, "maybe_declare", counting)
    (tmp_path / "results").mkdir()  # the default result backend: files there
    app = create_app(Settings(broker_url="memory://", data_dir=tmp_path))
    with app.connection_for_write() as connection:
        producer = app.amqp.Producer(connection.channel())
        for _ in range(3):
            app.send_task("media.ping", producer=producer)
        app.send_task("video.probe", producer=producer, kwargs={"job_id": "j"})
        assert sorted(declared) == sorted(q.name for q in routing.TOPOLOGY)
        app.send_task("media.ping", producer=app.amqp.Producer(connection.channel()))
        assert len(declared) == 2 * len(routing.TOPOLOGY)  # a new channel declares again
        depth = connection.default_channel.queue_declare("default_queue", passive=True)
        assert depth.message_count == 4  # each publish reached its queue
