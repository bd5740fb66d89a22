"""The job layer: the Celery app, routing, events, the job model, cancel, progress, uploads.

May import ``mediaapp.media`` and the shared modules; never ``mediaapp.ops``.
"""
