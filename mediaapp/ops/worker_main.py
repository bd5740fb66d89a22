"""``python -m mediaapp.ops.worker_main -Q QUEUE [-c N] [-l LEVEL] [-n NAME]``: the same worker as
``celery -A mediaapp worker`` (``app.Worker(...).start()``, which is what that command runs),
without loading Celery's command line.

Why: the ``celery`` command imports every sub-command before it parses anything (the
``amqp`` shell's prompt_toolkit, Flower's plugin, ...), 0.4-0.85 s of the demo's cold start
for a worker that needs none of it. The demo starts its worker with this; users and the
benchmarks keep the documented ``celery -A mediaapp worker``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    """Start the worker with the options given; its exit code."""
    parser = argparse.ArgumentParser(prog="python -m mediaapp.ops.worker_main")
    parser.add_argument("-Q", "--queues", required=True, help="comma-separated queue names")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-l", "--loglevel", default="info")
    parser.add_argument("-n", "--hostname", default=None)
    args = parser.parse_args(argv)
    from celery.utils.nodenames import default_nodename, host_format

    from mediaapp.jobs.app import app

    worker = app.Worker(
        hostname=host_format(default_nodename(args.hostname)),
        queues=args.queues.split(","),
        concurrency=args.concurrency,
        loglevel=args.loglevel.upper(),
    )
    worker.start()
    return int(worker.exitcode or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
