"""Audit consumer throughput: messages written durably per second, against a plain Kombu
consumer that only acks, each draining the same number of messages from ``audit_queue``.

    python -m bench audit [--messages 20000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from kombu import Connection, Consumer

from bench import write_result


def _fill(url: str, n: int) -> None:
    from mediaapp.jobs import routing

    with Connection(url) as conn:
        routing.declare_topology(conn)
        routing.AUDIT_QUEUE(conn.default_channel).purge()
        producer = conn.Producer(serializer="json")
        for i in range(n):
            producer.publish({"n": i, "event": "bench"}, exchange=routing.MEDIA_EXCHANGE,
                             routing_key="bench.audit", message_id=f"b{i}")  # fmt: skip


def _plain(url: str, n: int) -> float:
    from mediaapp.jobs import routing

    got = 0

    def ack(body: object, message: object) -> None:
        nonlocal got
        message.ack()  # type: ignore[attr-defined]
        got += 1

    with Connection(url) as conn:
        consumer = Consumer(conn, [routing.AUDIT_QUEUE], callbacks=[ack], accept=["json"])
        consumer.qos(prefetch_count=200)
        started = time.perf_counter()
        with consumer:
            while got < n:
                conn.drain_events(timeout=10)
        return n / (time.perf_counter() - started)


def _audit(url: str, n: int, log: Path) -> float:
    import threading

    from mediaapp.ops.audit import AuditConsumer

    consumer = AuditConsumer(Connection(url), log)
    thread = threading.Thread(target=consumer.run_forever, daemon=True)
    started = time.perf_counter()
    thread.start()
    while consumer.written < n:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    consumer.should_stop = True
    thread.join(10)
    return n / elapsed


def main(argv: list[str]) -> int:
    """Measure both rates on the same queue and print the ratio."""
    parser = argparse.ArgumentParser(prog="python -m bench audit")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--quick", action="store_true", help="smoke mode: 1000 messages")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    args = parser.parse_args(argv)
    n = 1000 if args.quick else args.messages
    os.environ.setdefault("MEDIAAPP_DATA_DIR", tempfile.mkdtemp(prefix="mediaapp-auditrate-"))
    _fill(args.broker, n)
    plain = _plain(args.broker, n)
    _fill(args.broker, n)
    log = Path(tempfile.mkdtemp(prefix="mediaapp-auditlog-")) / "audit.jsonl"
    audit = _audit(args.broker, n, log)
    with open(log, "rb") as fh:
        lines = sum(1 for _ in fh)
    print(f"audit consumer: {n} messages from audit_queue")
    print(f"  plain Kombu consumer, ack only           {plain:8.0f} msg/s  1.000x")
    print(f"  AuditConsumer, fsynced JSON lines        {audit:8.0f} msg/s  {audit / plain:.3f}x"
          f"   lines {lines}")  # fmt: skip
    row = {"messages": n, "plain_msg_s": round(plain), "audit_msg_s": round(audit),
           "ratio": round(audit / plain, 3)}  # fmt: skip
    write_result("audit", row, args.quick)
    return 0 if lines == n else 1
