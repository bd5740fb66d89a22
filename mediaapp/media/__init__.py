"""Files to files: probe, profiles, the ffmpeg boundary, ladders, packaging, chunks, outputs.

May import only the standard library, PyAV, ffmpeg-python and ``mediaapp.errors`` /
``mediaapp.settings`` / ``mediaapp.defaults``: never Celery, Kombu, ``mediaapp.jobs`` or
``mediaapp.ops``. Settings are passed in; nothing here reads the environment.
"""
