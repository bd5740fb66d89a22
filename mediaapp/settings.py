"""Settings read from the environment once, into one typed object shared by app, CLI and workers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path

from mediaapp import defaults

#: Environment variable → field, with the meaning shown in the README's settings table.
ENV_PREFIX = "MEDIAAPP_"


@dataclass(frozen=True)
class Settings:
    """Everything a mediaapp process needs to know about its surroundings."""

    data_dir: Path = defaults.DATA_DIR
    broker_url: str = ""  # empty → embedded filesystem:// broker under data_dir
    result_backend: str = ""  # empty → file:// results under data_dir
    media_root: Path = field(default_factory=Path.cwd)
    output_root: Path = Path()  # empty → data_dir / "outputs"
    audit_log: Path = Path()  # empty → data_dir / "audit.jsonl"
    ffmpeg: str = ""  # empty → PATH, then the imageio-ffmpeg binary
    ffmpeg_timeout_s: float = defaults.FFMPEG_TIMEOUT_S
    stall_timeout_s: float = defaults.STALL_TIMEOUT_S
    max_input_bytes: int = defaults.MAX_INPUT_BYTES
    max_duration_s: float = defaults.MAX_DURATION_S
    max_pixels: int = defaults.MAX_PIXELS
    max_streams: int = defaults.MAX_STREAMS
    max_retries: int = defaults.MAX_RETRIES
    #: Celery task events (what Flower shows); always off on the embedded broker.
    task_events: bool = True
    #: HLS ladders: "single" (one ffmpeg decodes once, split) or "per_rendition" (a task each).
    ladder_strategy: str = "single"
    #: Chunked parallel encoding: "auto" (the cost model decides), "always" or "never".
    chunking: str = "auto"
    #: Chunk length in seconds; 0 lets the cost model choose.
    chunk_s: float = 0.0
    #: Workers the cost model counts on; 0 asks the broker (consumers of video_queue).
    chunk_workers: int = 0
    #: Threads each ffmpeg command may use for decoding, filtering and encoding alike (one
    #: worker = this many cores); 0 lets ffmpeg choose (all cores).
    ffmpeg_threads: int = 0
    #: "text" or "json" (one JSON object per line with job id and task id).
    log_format: str = "text"
    #: Seconds a result-backend outage is ridden out (see defaults.BACKEND_GRACE_S).
    backend_grace_s: float = defaults.BACKEND_GRACE_S

    def __post_init__(self) -> None:
        # Derived paths are filled in here so every process computes them the same way.
        data = self.data_dir.expanduser().resolve()
        object.__setattr__(self, "data_dir", data)
        object.__setattr__(self, "media_root", self.media_root.expanduser().resolve())
        if self.output_root == Path():
            object.__setattr__(self, "output_root", data / "outputs")
        if self.audit_log == Path():
            object.__setattr__(self, "audit_log", data / "audit.jsonl")
        if not self.broker_url:
            object.__setattr__(self, "broker_url", "filesystem://")
        if not self.result_backend:
            object.__setattr__(self, "result_backend", f"file://{data / 'results'}")
        if self.chunking not in ("auto", "always", "never"):
            raise ValueError(f"chunking must be auto, always or never, not {self.chunking!r}")

    @property
    def embedded(self) -> bool:
        """True when the broker is Kombu's filesystem transport (no server needed)."""
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        """Message folder of the embedded broker (shared by every process using these settings)."""
        return self.data_dir / "broker"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings from ``MEDIAAPP_*`` variables; unknown or malformed values fail loudly."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            kind = type(getattr(_DEFAULTS, f.name))
            try:
                if kind is bool:
                    kwargs[f.name] = _parse_bool(raw)
                    continue
                kwargs[f.name] = Path(raw) if kind is type(Path()) else kind(raw)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: {exc}") from None
        return cls(**kwargs)  # type: ignore[arg-type]


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


_DEFAULTS = Settings(media_root=Path("/"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
