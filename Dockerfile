# One image for every mediaapp service (workers, audit consumer, Flower).
# ffmpeg comes from the imageio-ffmpeg wheel and PyAV from its own wheel: no apt packages.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MEDIAAPP_DATA_DIR=/data \
    MEDIAAPP_MEDIA_ROOT=/media

RUN useradd --create-home --uid 1000 mediaapp \
    && mkdir -p /app /data /media \
    && chown mediaapp:mediaapp /data /media
WORKDIR /app

COPY pyproject.toml README.md ./
COPY mediaapp ./mediaapp
COPY tasks ./tasks
COPY samples ./samples
# The smoke check imports the app, which (with no broker set) creates the embedded broker's
# folders under MEDIAAPP_DATA_DIR: point it at a scratch dir, or /data would get root-owned
# subdirectories that the mediaapp user cannot write (and every new volume would copy them).
RUN pip install --no-cache-dir . \
    && MEDIAAPP_DATA_DIR=/tmp/build-check python -c \
        "import mediaapp, av; from mediaapp.media.command import ffmpeg_version; print(ffmpeg_version())" \
    && rm -rf /tmp/build-check

USER mediaapp
# The audit log is written 0640 in a 0750 directory: nothing but this user appends to it.
VOLUME ["/data", "/media"]
CMD ["celery", "-A", "mediaapp", "worker", "-Q", "video_queue"]
