"""Celery task modules: thin wrappers that unpack arguments, call mediaapp.pipeline, retry."""
