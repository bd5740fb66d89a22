"""mediaapp: distributed media processing on Celery, Kombu, RabbitMQ and ffmpeg.

``celery -A mediaapp worker -Q video_queue`` finds :data:`app`; producers use :func:`submit`.
"""

from mediaapp.errors import MediaError
from mediaapp.jobs.app import app
from mediaapp.jobs.client import Job, probe, submit, thumbnail
from mediaapp.settings import Settings, get_settings

__all__ = ["Job", "MediaError", "Settings", "app", "get_settings", "probe", "submit", "thumbnail"]
