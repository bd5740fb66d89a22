"""Settings read from the environment once, into one typed object shared by app, CLI and workers.

:class:`Settings` is a pydantic-settings model: pydantic parses and checks every value (an
enum-like setting outside its choices, a number that is not one), and a bad ``MEDIAAPP_*``
variable becomes one :class:`~mediaapp.errors.ConfigurationError` naming the variable, the
value and what is allowed. :meth:`Settings.from_env` is the only way the environment is read;
``Settings(data_dir=..., ...)`` uses its arguments and the defaults, nothing else.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from mediaapp import defaults
from mediaapp.errors import ConfigurationError

#: Environment variable → field: ``MEDIAAPP_`` + the field name in capitals (README table).
ENV_PREFIX = "MEDIAAPP_"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/mediaapp``, else ``~/.local/share/mediaapp``."""
    env = os.environ if environ is None else environ
    return Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "mediaapp"


class Settings(BaseSettings):
    """Everything a mediaapp process needs to know about its surroundings."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid"
    )

    #: Home of the embedded broker, results, outputs and audit log.
    data_dir: Path = Field(default_factory=default_data_dir)
    broker_url: str = ""  # empty → embedded filesystem:// broker under data_dir
    result_backend: str = ""  # empty → file:// results under data_dir
    media_root: Path = Field(default_factory=Path.cwd)
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
    #: Our lifecycle events (task.started/succeeded/failed/retried/revoked, job.finished) on the
    #: audit stream; off leaves the audit a mirror of task messages only (the dispatch floor).
    lifecycle_events: bool = True
    #: Short tasks (``media.ping``): the worker's main process publishes their lifecycle events
    #: at most this many seconds late, many tasks to a message, acking each task's message
    #: once they are confirmed; 0: the pool process publishes them, a message per task.
    event_batch_s: float = Field(default=defaults.EVENT_BATCH_S, ge=0, le=5)
    #: HLS ladders: "single" (one ffmpeg decodes once, split) or "per_rendition" (a task each).
    ladder_strategy: Literal["single", "per_rendition"] = "single"
    #: Chunked parallel encoding: "auto" (the cost model decides), "always" or "never".
    chunking: Literal["auto", "always", "never"] = "auto"
    #: Chunk length in seconds; 0 lets the cost model choose.
    chunk_s: float = 0.0
    #: Workers the cost model counts on; 0 asks the broker (consumers of video_queue).
    chunk_workers: int = 0
    #: Threads each ffmpeg command may use for decoding, filtering and encoding alike (one
    #: worker = this many cores); 0 lets ffmpeg choose (all cores).
    ffmpeg_threads: int = 0
    #: "text" or "json" (one JSON object per line with job id and task id).
    log_format: Literal["text", "json"] = "text"
    #: Directory whose ``*.toml`` files add profiles or replace shipped ones by name; "" = none.
    profiles_dir: str = ""
    #: Redis key ``media.ping`` increments in the result backend (the dispatch benchmark); "" = off.
    ping_counter: str = ""
    #: Seconds a result-backend outage is ridden out (see defaults.BACKEND_GRACE_S).
    backend_grace_s: float = defaults.BACKEND_GRACE_S
    # Object storage (mediaapp/storage): where outputs go, and the S3 server jobs may use.
    #: Outputs: "" = the output_root folder; a folder; or ``s3://bucket/prefix``.
    output_url: str = ""
    #: Encoded-chunk cache: "" = data_dir/chunk-cache; a folder; or ``s3://bucket/prefix``
    #: (shared by the workers of every host).
    chunk_cache_url: str = ""
    #: Local scratch of staged inputs and outputs on their way to the store; "" = data_dir/scratch.
    scratch_dir: Path = Path()
    s3_endpoint_url: str = ""  # "" = AWS's own endpoints
    s3_region: str = defaults.S3_REGION
    s3_access_key_id: SecretStr = SecretStr("")
    s3_secret_access_key: SecretStr = SecretStr("")
    #: Buckets jobs may read and write, comma-separated; none when empty.
    s3_buckets: str = ""
    #: Files above this many bytes are uploaded in parts of this size (multipart).
    s3_part_bytes: int = defaults.S3_PART_BYTES
    #: Chunk cache pruning (``mediaapp gc``): total bytes kept, and the oldest entry's age.
    chunk_cache_max_bytes: int = defaults.CHUNK_CACHE_MAX_BYTES
    chunk_cache_max_age_s: float = defaults.CHUNK_CACHE_MAX_AGE_S
    #: Narrows what a worker offers: codecs (h264, hevc, av1) or encoder names, comma-separated;
    #: "" = every encoder that passes its start-up test. Never adds one that failed it.
    capabilities: str = ""
    #: Encode with a proven hardware encoder of the codec (NVENC, QSV) when the worker has one;
    #: off: always the software one. A hardware fault falls back to software either way.
    prefer_hardware: bool = True
    # Per-tenant fair share (mediaapp/jobs/tenants.py; README "Per-tenant fair share").
    #: Jobs in flight per priority level a tenant's new job is demoted by (its weight: larger =
    #: a bigger share); ``tenant_shares`` overrides it per tenant, ``acme=4,small=1``.
    tenant_share: int = Field(default=defaults.TENANT_SHARE, ge=1)
    tenant_shares: str = ""
    #: Steps one tenant may run at once (0 = no cap); ``tenant_caps`` per tenant, ``acme=2``.
    tenant_max_running: int = Field(default=defaults.TENANT_MAX_RUNNING, ge=0)
    tenant_caps: str = ""
    #: Seconds a job counts in its tenant's backlog at most (heals a lost decrement).
    tenant_backlog_ttl_s: float = Field(default=defaults.TENANT_BACKLOG_TTL_S, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Constructor arguments only: the environment is read by from_env, and nowhere else.
        return (init_settings,)

    @field_validator("task_events", "lifecycle_events", mode="before")
    @classmethod
    def _bool_words(cls, value: Any) -> Any:
        return _parse_bool(value) if isinstance(value, str) else value

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: str) -> str:
        known = {*defaults.CAPABILITY_ENCODERS}
        known |= {e for names in defaults.CAPABILITY_ENCODERS.values() for e in names}
        items = [item.strip().lower() for item in value.split(",") if item.strip()]
        unknown = [item for item in items if item not in known]
        if unknown:
            raise ValueError(f"unknown {', '.join(unknown)}: use {', '.join(sorted(known))}")
        return ",".join(items)

    @field_validator("tenant_shares", "tenant_caps")
    @classmethod
    def _tenant_numbers(cls, value: str) -> str:
        _tenant_map(value)  # raises ValueError on a bad entry
        return value

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        # Derived paths are filled in here so every process computes them the same way. The
        # model is frozen, hence object.__setattr__ (this runs once, during validation).
        data = self.data_dir.expanduser().resolve()
        object.__setattr__(self, "data_dir", data)
        object.__setattr__(self, "media_root", self.media_root.expanduser().resolve())
        if self.output_root == Path():
            object.__setattr__(self, "output_root", data / "outputs")
        scratch = data / "scratch" if self.scratch_dir == Path() else self.scratch_dir
        object.__setattr__(self, "scratch_dir", scratch.expanduser().resolve())
        if self.output_root == Path() and self.output_url.lower().startswith("s3://"):
            object.__setattr__(self, "output_root", self.scratch_dir / "outputs")
        if self.audit_log == Path():
            object.__setattr__(self, "audit_log", data / "audit.jsonl")
        if not self.broker_url:
            object.__setattr__(self, "broker_url", "filesystem://")
        if not self.result_backend:
            object.__setattr__(self, "result_backend", f"file://{data / 'results'}")
        return self

    @property
    def embedded(self) -> bool:
        """True when the broker is Kombu's filesystem transport (no server needed)."""
        return self.broker_url.startswith("filesystem://")

    @property
    def allowed_buckets(self) -> frozenset[str]:
        """``s3_buckets`` as a set (jobs may name no other bucket)."""
        return frozenset(b.strip() for b in self.s3_buckets.split(",") if b.strip())

    @property
    def claimed_capabilities(self) -> tuple[str, ...]:
        """``capabilities`` as a tuple; empty = no narrowing."""
        return tuple(self.capabilities.split(",")) if self.capabilities else ()

    def share_of(self, tenant: str) -> int:
        """Jobs per priority level for ``tenant`` (``tenant_shares``, else ``tenant_share``)."""
        return max(1, _tenant_map(self.tenant_shares).get(tenant, self.tenant_share))

    def cap_of(self, tenant: str) -> int:
        """Steps ``tenant`` may run at once (``tenant_caps``, else ``tenant_max_running``)."""
        return _tenant_map(self.tenant_caps).get(tenant, self.tenant_max_running)

    @property
    def broker_folder(self) -> Path:
        """Message folder of the embedded broker (shared by every process using these settings)."""
        return self.data_dir / "broker"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``MEDIAAPP_*`` variables (empty = unset) of ``environ`` or the process.

        Raises :class:`ConfigurationError` naming each bad variable, its value and what is allowed.
        """
        env = os.environ if environ is None else environ
        values = _MappingEnvSource(cls, env)()
        if "data_dir" not in values:
            values["data_dir"] = default_data_dir(env)
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc)) from None


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' own environment source, over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _tenant_map(raw: str) -> dict[str, int]:
    """``acme=4,small=1`` as a dict; a bad entry raises ValueError naming it."""
    found: dict[str, int] = {}
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        name, _, number = item.partition("=")
        if not name.strip() or not number.strip().isdigit():
            raise ValueError(f"{item!r} is not tenant=number (e.g. acme=4,small=1)")
        found[name.strip()] = int(number)
    return found


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("not a boolean: use 1/true/yes/on or 0/false/no/off")


def _describe(exc: ValidationError) -> str:
    """One line for all errors: ``MEDIAAPP_X='value': what is wrong (what is allowed)``."""
    problems = []
    for err in exc.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else ""
        field = Settings.model_fields.get(name)
        var = ENV_PREFIX + name.upper() if name else "settings"
        if err["type"] == "literal_error" and field is not None:
            allowed = ", ".join(str(choice) for choice in typing.get_args(field.annotation))
            why = f"must be one of {allowed}"
        else:
            why = err["msg"].removeprefix("Value error, ")
        problems.append(f"{var}={err['input']!r}: {why}")
    return "; ".join(problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
