"""Settings: pydantic-settings parses and checks every MEDIAAPP_* variable; the CLI says which."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mediaapp.errors import ConfigurationError
from mediaapp.settings import Settings, get_settings

from ..conftest import REPO, child_env

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("var", "value", "allowed"),
    [
        ("MEDIAAPP_CHUNKING", "bogus", "auto, always, never"),
        ("MEDIAAPP_LADDER_STRATEGY", "per_rendtion", "single, per_rendition"),
        ("MEDIAAPP_LOG_FORMAT", "xml", "text, json"),
    ],
)
def test_unknown_choice_names_the_variable_value_and_choices(
    var: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({var: value})
    assert str(info.value) == f"{var}={value!r}: must be one of {allowed}"
    assert info.value.exit_code == 78


def test_every_bad_variable_is_named_in_one_line() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"MEDIAAPP_CHUNKING": "bogus", "MEDIAAPP_MAX_RETRIES": "three"})
    message = str(info.value)
    assert "\n" not in message
    assert "MEDIAAPP_CHUNKING='bogus'" in message and "MEDIAAPP_MAX_RETRIES='three'" in message


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("MEDIAAPP_MAX_INPUT_BYTES", "lots"),
        ("MEDIAAPP_MAX_STREAMS", "1.5"),
        ("MEDIAAPP_FFMPEG_TIMEOUT_S", "an hour"),
        ("MEDIAAPP_CHUNK_WORKERS", "4 workers"),
    ],
)
def test_bad_number_names_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{var}={value!r}: .*valid (integer|number)"):
        Settings.from_env({var: value})


def test_numbers_parse() -> None:
    s = Settings.from_env({"MEDIAAPP_MAX_STREAMS": "4", "MEDIAAPP_CHUNK_S": "12.5"})
    assert s.max_streams == 4 and s.chunk_s == 12.5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("1", True), ("true", True), ("YES", True), (" on ", True)],
        *[("0", False), ("false", False), ("No", False), ("off", False)],
    ],
)
def test_bool_words(raw: str, expected: bool) -> None:
    assert Settings.from_env({"MEDIAAPP_TASK_EVENTS": raw}).task_events is expected
    assert Settings.from_env({"MEDIAAPP_LIFECYCLE_EVENTS": raw}).lifecycle_events is expected


def test_bad_bool_names_the_variable_and_the_words() -> None:
    with pytest.raises(ConfigurationError, match="MEDIAAPP_TASK_EVENTS='maybe': not a boolean"):
        Settings.from_env({"MEDIAAPP_TASK_EVENTS": "maybe"})


def test_derived_paths_and_urls(tmp_path: Path) -> None:
    s = Settings.from_env({"MEDIAAPP_DATA_DIR": str(tmp_path / "d" / ".." / "data")})
    data = (tmp_path / "data").resolve()
    assert s.data_dir == data
    assert s.output_root == data / "outputs" and s.audit_log == data / "audit.jsonl"
    assert s.broker_url == "filesystem://" and s.embedded
    assert s.result_backend == f"file://{data / 'results'}"
    assert s.broker_folder == data / "broker"


def test_explicit_values_win_over_derived_ones(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "MEDIAAPP_DATA_DIR": str(tmp_path),
            "MEDIAAPP_OUTPUT_ROOT": "/srv/out",
            "MEDIAAPP_AUDIT_LOG": "/var/log/audit.jsonl",
            "MEDIAAPP_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
            "MEDIAAPP_RESULT_BACKEND": "redis://127.0.0.1:6379/0",
        }
    )
    assert s.output_root == Path("/srv/out") and s.audit_log == Path("/var/log/audit.jsonl")
    assert not s.embedded and s.result_backend == "redis://127.0.0.1:6379/0"


def test_empty_variable_means_unset(tmp_path: Path) -> None:
    s = Settings.from_env({"MEDIAAPP_DATA_DIR": str(tmp_path), "MEDIAAPP_CHUNKING": ""})
    assert s.chunking == "auto" and s.broker_url == "filesystem://"


def test_data_dir_follows_xdg_data_home(tmp_path: Path) -> None:
    assert Settings.from_env({"XDG_DATA_HOME": str(tmp_path)}).data_dir == tmp_path / "mediaapp"
    assert Settings.from_env({}).data_dir == Path.home() / ".local" / "share" / "mediaapp"


def test_profiles_dir_and_ping_counter_are_settings() -> None:
    s = Settings.from_env({"MEDIAAPP_PROFILES_DIR": "/etc/mediaapp", "MEDIAAPP_PING_COUNTER": "k"})
    assert s.profiles_dir == "/etc/mediaapp" and s.ping_counter == "k"


def test_explicit_construction_ignores_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAAPP_CHUNKING", "bogus")
    monkeypatch.setenv("MEDIAAPP_BROKER_URL", "amqp://elsewhere//")
    s = Settings(data_dir=tmp_path, media_root=tmp_path)
    assert s.chunking == "auto" and s.broker_url == "filesystem://"
    assert s == Settings(data_dir=tmp_path, media_root=tmp_path)


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, media_root=tmp_path)
    with pytest.raises(ValueError, match="frozen"):
        s.chunking = "never"  # type: ignore[misc]


def test_get_settings_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    try:
        first = get_settings()
        assert get_settings() is first
        monkeypatch.setenv("MEDIAAPP_CHUNKING", "never")
        assert get_settings().chunking == first.chunking
        get_settings.cache_clear()
        assert get_settings().chunking == "never"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_cli_prints_settings_as_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mediaapp", "settings"],
        env=child_env(MEDIAAPP_DATA_DIR=str(tmp_path), MEDIAAPP_CHUNKING="never"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["chunking"] == "never" and shown["output_root"] == str(tmp_path / "outputs")


@pytest.mark.parametrize("command", [["settings"], ["dlq", "list"]])
def test_cli_exits_78_with_one_line_for_a_bad_variable(command: list[str]) -> None:
    # "dlq list" imports mediaapp.jobs.app, which builds the Celery app (reading the settings)
    # at import: the error must still come out as the one line, not a traceback.
    done = subprocess.run(
        [sys.executable, "-m", "mediaapp", *command],
        env=child_env(MEDIAAPP_CHUNKING="bogus", COLUMNS="40"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 78, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "ConfigurationError" in lines[0]
    assert "MEDIAAPP_CHUNKING='bogus': must be one of auto, always, never" in lines[0]
    assert done.stdout == ""


def test_settings_defaults_are_embedded_and_derived(tmp_path: Path) -> None:
    s = Settings.from_env({"MEDIAAPP_DATA_DIR": str(tmp_path)})
    assert s.embedded and s.broker_url == "filesystem://"
    assert s.result_backend == f"file://{tmp_path / 'results'}"
    assert s.audit_log == tmp_path / "audit.jsonl"
    assert s.output_root == tmp_path / "outputs"


def test_settings_parse_types_and_reject_garbage(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "MEDIAAPP_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
            "MEDIAAPP_MAX_INPUT_BYTES": "1000",
            "MEDIAAPP_FFMPEG_TIMEOUT_S": "2.5",
            "MEDIAAPP_MEDIA_ROOT": str(tmp_path),
        }
    )
    assert not s.embedded
    assert s.max_input_bytes == 1000 and s.ffmpeg_timeout_s == 2.5
    assert s.media_root == tmp_path.resolve()
    with pytest.raises(ConfigurationError, match="MEDIAAPP_MAX_INPUT_BYTES"):
        Settings.from_env({"MEDIAAPP_MAX_INPUT_BYTES": "lots"})
