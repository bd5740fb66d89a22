"""An outside producer that knows nothing of Celery or mediaapp: plain Kombu, JSON events.

    python scripts/seed_producer.py --file clip.mp4 --id upload-42
    python scripts/seed_producer.py --broker filesystem:// \
        --data-folder ~/.local/share/mediaapp/broker

It publishes ``{"file": ..., "id": ...}`` with routing key ``video.upload`` (a worker turns it
into a transcode job) and ``{"user": "admin"}`` with ``user.login`` (only audited). Any AMQP
client in any language can do the same: a durable topic exchange ``media_exchange``, JSON
bodies, persistent delivery. The queues and bindings belong to the consumers (``mediaapp
declare`` or any running worker / audit consumer declares them); the producer declares only
the exchange it publishes to.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from kombu import Connection, Exchange

EXCHANGE = Exchange("media_exchange", type="topic", durable=True)


def main() -> None:
    """Publish one upload event and one login event."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--broker", default=os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    )
    parser.add_argument("--data-folder", help="embedded broker folder (filesystem:// only)")
    parser.add_argument("--file", default="clip.mp4", help="path relative to the media root")
    parser.add_argument(
        "--id", default="seed-1", help="the upload's id (job id is derived from it)"
    )
    parser.add_argument("--user", default="admin")
    args = parser.parse_args()

    options = {}
    if args.broker.startswith("filesystem://"):
        folder = Path(args.data_folder or "~/.local/share/mediaapp/broker").expanduser()
        options = {
            "data_folder_in": str(folder / "messages"),
            "data_folder_out": str(folder / "messages"),
            "control_folder": str(folder / "control"),
        }
    with Connection(args.broker, transport_options=options) as conn:
        producer = conn.Producer(serializer="json")
        for key, body in (
            ("video.upload", {"file": args.file, "id": args.id}),
            ("user.login", {"user": args.user}),
        ):
            producer.publish(
                body,
                exchange=EXCHANGE,
                routing_key=key,
                declare=[EXCHANGE],
                delivery_mode=2,
                retry=True,
            )
            print(f"published {key} {json.dumps(body)}")


if __name__ == "__main__":
    main()
