"""Celery task modules: each task one call into mediaapp.media (policy in mediaapp.jobs.step)."""
