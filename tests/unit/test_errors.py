"""The error tree: shallow, typed, retryable by class, and it survives Celery's JSON results."""

from __future__ import annotations

import pytest
from celery.backends.base import Backend

from mediaapp import errors

pytestmark = pytest.mark.unit


def test_error_tree_is_shallow_and_typed() -> None:
    for cls in (
        errors.InputNotFound,
        errors.EmptyInput,
        errors.NotMedia,
        errors.LimitExceeded,
        errors.InputOutsideRoot,
        errors.UnknownProfile,
    ):
        assert issubclass(cls, errors.InvalidInput) and not cls.retryable
        assert cls.__doc__ and cls.code
    assert errors.TransientError.retryable
    assert errors.FFmpegKilled("x", returncode=-9).retryable
    assert not errors.FFmpegError("x", returncode=1).retryable
    assert errors.FFmpegTimeout("x").retryable and errors.FFmpegStalled("x").retryable
    for killed in (errors.FFmpegKilled, errors.FFmpegTimeout, errors.FFmpegStalled):
        assert issubclass(killed, errors.FFmpegError) and issubclass(killed, errors.TransientError)
        assert killed.exit_code == errors.TransientError.exit_code


@pytest.mark.parametrize("cls", [errors.NotMedia, errors.FFmpegError, errors.InputOutsideRoot])
def test_errors_survive_celerys_json_result_serializer(cls: type[errors.MediaError]) -> None:
    backend = Backend(app=__import__("mediaapp").app)
    stored = backend.prepare_exception(cls("clip.mp4: broken"), serializer="json")
    back = backend.exception_to_python(stored)
    assert type(back) is cls and str(back) == "clip.mp4: broken"


def test_an_encoder_fault_is_retryable_and_names_its_encoder_after_the_json_round_trip() -> None:
    fault = errors.EncoderFault(
        "hardware encoder h264_nvenc failed: OpenEncodeSessionEx failed: out of memory (10)"
    )
    assert fault.retryable and isinstance(fault, errors.FFmpegError)
    assert fault.exit_code == errors.TransientError.exit_code
    backend = Backend(app=__import__("mediaapp").app)
    back = backend.exception_to_python(backend.prepare_exception(fault, serializer="json"))
    assert type(back) is errors.EncoderFault
    assert back.to_dict()["encoder"] == "h264_nvenc"
    assert back.reason == "OpenEncodeSessionEx failed: out of memory (10)"
