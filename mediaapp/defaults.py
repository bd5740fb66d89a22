"""Named defaults, each with its unit, in one place (the rq ``defaults.py`` pattern).

Every value here can be overridden by the environment variable named in
:mod:`mediaapp.settings`; nothing else in the code base hard-codes these numbers. Nothing here
reads the environment.
"""

from __future__ import annotations

# The data directory's default ($XDG_DATA_HOME/mediaapp) depends on the environment, so it is
# computed by mediaapp.settings (default_data_dir), not here at import.

#: RabbitMQ as it runs on every development and CI machine here.
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
#: Redis result backend for real deployments.
REDIS_URL = "redis://127.0.0.1:6379/0"

#: Seconds an ffmpeg command may run before it is killed (hard stop for a hung encoder).
FFMPEG_TIMEOUT_S = 3600.0
#: Seconds without a line of ffmpeg's -progress feed (sent every 0.5 s) before it is killed.
STALL_TIMEOUT_S = 120.0
#: How many trailing characters of ffmpeg's stderr an error keeps.
STDERR_TAIL_CHARS = 2000
#: Seconds the Celery hard time limit adds to the ffmpeg timeout (the soft limit fires first,
#: at FFMPEG_TIMEOUT_S + this / 2, and kills ffmpeg's process group cleanly).
TASK_TIME_LIMIT_MARGIN_S = 300.0
#: Deliveries of one task message (same task id, same retry count) before it is treated as a
#: poison message: it keeps killing or outliving its worker, so it goes to the dead letters.
MAX_DELIVERIES = 3
#: Seconds between two PROGRESS state updates of one task (ffmpeg reports every 0.5 s).
PROGRESS_INTERVAL_S = 0.5

#: Poll interval of Kombu's filesystem transport, in seconds (its own default is 1 s).
FILESYSTEM_POLL_S = 0.1

#: Seconds a publisher waits for the broker to confirm a batch of publishes before it gives
#: up on the confirms and publishes the batch again.
CONFIRM_TIMEOUT_S = 10.0

#: Seconds a worker buffers Celery's task events (Flower's feed) before sending them together.
TASK_EVENTS_FLUSH_S = 0.1
#: Longest a short task's ack waits for its lifecycle events' batch (mediaapp.jobs.eventbatch).
EVENT_BATCH_S = 0.05

#: Audit consumer: lines written per fsync, and the longest a line waits for its batch, in seconds.
AUDIT_BATCH_LINES = 100
AUDIT_FLUSH_S = 0.2
#: Audit consumer prefetch, in messages (bounded: at most two batches in flight).
AUDIT_PREFETCH = 2 * AUDIT_BATCH_LINES
#: Message ids the audit log remembers to flag a redelivered copy: a redelivery is of a message
#: fetched and not acked (at most AUDIT_PREFETCH old), so a window 100 times that is ample,
#: and the consumer's memory stays flat however long the log or the backlog (bench memory).
AUDIT_DEDUP_WINDOW = 100 * AUDIT_PREFETCH

#: Input limits checked before any encode.
MAX_INPUT_BYTES = 20 * 1024**3  # 20 GiB
MAX_DURATION_S = 6 * 3600.0  # six hours
MAX_PIXELS = 8192 * 4320  # 8K
MAX_STREAMS = 16

#: Transient failures: retries before giving up, first back-off in seconds, back-off cap in seconds.
MAX_RETRIES = 3
RETRY_BACKOFF_S = 2.0
RETRY_BACKOFF_MAX_S = 60.0

#: Chunked encoding (mediaapp/chunking.py). Chunks are cut at source keyframes, so a chunk
#: is at least this long, in seconds, and the cost model never plans them shorter or longer.
MIN_CHUNK_S = 10.0
MAX_CHUNK_S = 120.0
#: Chunks planned per worker: more than one evens out chunks that encode at different speeds.
CHUNKS_PER_WORKER = 2
#: Cost model inputs, measured on this project's 2-core machine: output pixels per second
#: one x264 thread encodes (preset veryfast, 1080p source; measured 70 Mpx/s for web-480,
#: 93 for web, 112 for web-1080: decoding the source weighs more on small outputs), the
#: per-chunk task cost (dispatch, ffmpeg start, encoder warm-up) in seconds, and the job's
#: fixed cost of chunking (split, audio track, concat, verification) in seconds: a 60 s 1080p
#: web job chunked on one worker took 0.6 s longer than unchunked (python -m bench scaling);
#: the figures here are twice that, to be on the safe side.
ENCODE_PIXELS_PER_S = 80e6
CHUNK_TASK_OVERHEAD_S = 0.3
CHUNKING_FIXED_S = 1.0
#: Chunk only when the predicted chunked time is at most this fraction of a single encode.
CHUNKING_MIN_GAIN = 0.8

#: Default transcoding profile.
DEFAULT_PROFILE = "web"

#: Flower: port, and how often (milliseconds) its persistent state is saved.
FLOWER_PORT = 5555
FLOWER_STATE_SAVE_MS = 10_000
#: RabbitMQ management API port (Flower reads queue lengths there).
RABBITMQ_MANAGEMENT_PORT = 15672

#: Seconds a result-backend (Redis) outage is ridden out: progress updates and cancel checks
#: degrade, the final result is stored once it is back, clients keep waiting. Keep it under
#: STALL_TIMEOUT_S (a step blocked on the backend reads no ffmpeg progress meanwhile).
BACKEND_GRACE_S = 60.0
#: Seconds a CLI command waits for the broker or the backend before it says which is down.
SERVICE_CHECK_TIMEOUT_S = 3.0

#: Output disk: an encode starts only with this much more free space than its outputs'
#: estimated size (bytes), and the estimate's safety factor.
MIN_FREE_BYTES = 16 * 1024**2
OUTPUT_ESTIMATE_FACTOR = 1.5

#: Audit log: first and longest back-off, in seconds, while its disk is full.
AUDIT_RETRY_S = 0.5
AUDIT_RETRY_MAX_S = 10.0

#: Bounds on what outside producers send and on what we quote back (characters or bytes).
MAX_EVENT_BYTES = 64 * 1024  # a raw video.upload body
MAX_NAME_BYTES = 4096  # a file name (PATH_MAX)
MAX_ID_CHARS = 256  # an event id
MAX_PROFILE_CHARS = 64
MAX_QUOTE_CHARS = 200  # any input quoted in an error message or a reason
MAX_AUDIT_FIELD_CHARS = 4096  # any one string in an audit record
#: A subtitle track (a sidecar file, or an embedded track as WebVTT): bytes and cues at most;
#: and the bytes of its HLS segments (a cue is repeated in every segment it spans).
MAX_SUBTITLE_BYTES = 4 * 1024**2
MAX_SUBTITLE_CUES = 20_000
MAX_SUBTITLE_SEGMENTED_BYTES = 64 * 1024**2
#: Seconds an upload event's claim on its job id is kept (a second copy within it is a duplicate).
UPLOAD_CLAIM_TTL_S = 7 * 24 * 3600
#: Object storage: the region asked for when none is set, the multipart part size (bytes),
#: and the chunk cache's bounds (``mediaapp gc``): total bytes, and age in seconds.
S3_REGION = "us-east-1"
S3_PART_BYTES = 8 * 1024**2
CHUNK_CACHE_MAX_BYTES = 20 * 1024**3
CHUNK_CACHE_MAX_AGE_S = 7 * 24 * 3600.0

#: Measured quality (``quality.measure``): frames scored per rendition unless the profile says
#: (``quality.sample``; 0 scores the whole duration): this many per minute of video, at least
#: the minimum and at most the maximum (frames); and the most windows they are spread over.
QUALITY_SAMPLE_PER_MIN = 12
QUALITY_SAMPLE_MIN = 4
QUALITY_SAMPLE_MAX = 120
QUALITY_WINDOWS = 4

#: Encoder capabilities (mediaapp/media/encoders.py): the codecs a worker can prove, and per
#: codec the encoders tried at start-up, software first. A one-frame test encode of this
#: size must finish within the timeout (seconds), or the encoder is refused.
CAPABILITY_ENCODERS: dict[str, tuple[str, ...]] = {
    "h264": ("libx264", "h264_nvenc", "h264_qsv", "h264_vaapi"),
    "hevc": ("libx265", "hevc_nvenc", "hevc_qsv", "hevc_vaapi"),
    "av1": ("libsvtav1", "av1_nvenc", "av1_qsv", "av1_vaapi"),
}
SOFTWARE_ENCODERS = frozenset({"libx264", "libx265", "libsvtav1"})
ENCODER_TEST_SIZE = "256x144"
ENCODER_TEST_TIMEOUT_S = 20.0
#: Job priorities (RabbitMQ priority queues, ``x-max-priority``): 0 = lowest, MAX_PRIORITY =
#: most urgent; a job submitted without one gets DEFAULT_PRIORITY, so bulk work can go below it.
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5
#: Per-tenant fair share (mediaapp/jobs/tenants.py): a tenant's job is demoted one priority
#: level per TENANT_SHARE jobs it already has in flight (queued or running), by at most
#: FAIR_SHARE_MAX_DEMOTION levels (so an urgent job still overtakes its own tenant's backlog).
TENANT_SHARE = 1
FAIR_SHARE_MAX_DEMOTION = DEFAULT_PRIORITY
#: Seconds a job counts in its tenant's backlog at most: a count whose decrement was lost (a
#: purged message) heals by itself after this long.
TENANT_BACKLOG_TTL_S = 6 * 3600.0
#: Steps a tenant may run at once; 0 = no cap. A step over the cap is put back in the queue
#: after this many seconds (jittered), neither a failure nor a delivery of a poison message.
TENANT_MAX_RUNNING = 0
TENANT_DEFER_S = 2.0
#: Tenant names: what a Redis key, a metric label and a log line can carry safely.
MAX_TENANT_CHARS = 64

#: Multi-codec ladders (mediaapp/media/cmaf.py): a rung's ``video_kbps`` is for the profile's
#: own codec; another codec of the rung gets it scaled by these factors (HEVC and AV1 give
#: the same picture for fewer bits), and SVT-AV1 takes the speed of the x264 preset named.
CODEC_KBPS_FACTOR = {"h264": 1.0, "hevc": 0.7, "av1": 0.6}
SVTAV1_PRESETS = {"ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8,
                  "medium": 7, "slow": 6, "slower": 5}  # fmt: skip
#: The software encoder of each codec of a ladder.
LADDER_ENCODERS = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1"}
