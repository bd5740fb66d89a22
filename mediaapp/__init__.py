"""mediaapp: distributed media processing on Celery, Kombu, RabbitMQ and ffmpeg.

``celery -A mediaapp worker -Q video_queue`` finds :data:`app`; producers use :func:`submit`.
"""

from mediaapp.celery import app
from mediaapp.client import Job, probe, submit, thumbnail
from mediaapp.errors import MediaError
from mediaapp.settings import Settings, get_settings

__all__ = ["Job", "MediaError", "Settings", "app", "get_settings", "probe", "submit", "thumbnail"]
