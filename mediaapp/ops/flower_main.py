"""``python -m mediaapp.ops.flower_main -A mediaapp flower ...``: Flower with *every* page
behind the login.

Flower 2.x serves ``/metrics`` and ``/healthcheck`` without authentication even when basic
auth is on; here both require it like the rest (a Prometheus scrape job sets ``basic_auth``,
a health probe sends the same header). Then Celery's own ``celery`` command runs Flower.
"""

from __future__ import annotations

import sys

#: Pages Flower leaves open; every one gets the login here.
OPEN_PAGES = ("Metrics", "Healthcheck")


def lock_down() -> None:
    """Wrap the GET of Flower's open pages in ``tornado.web.authenticated``."""
    from flower.views import monitor
    from tornado import web

    for name in OPEN_PAGES:
        handler = getattr(monitor, name)
        if not getattr(handler.get, "mediaapp_login", False):
            guarded = web.authenticated(handler.get)
            guarded.mediaapp_login = True  # type: ignore[attr-defined]
            handler.get = guarded


def main(argv: list[str]) -> None:
    """Lock Flower down, then run ``celery <argv>`` in this process."""
    lock_down()
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *argv]
    celery_main()


if __name__ == "__main__":
    main(sys.argv[1:])
