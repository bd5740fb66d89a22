"""Is the set-up usable? One line naming the service, its URL (no password) and what to
check, with the README's exit code, instead of a traceback after twenty reconnects.

The CLI checks the services a command needs before it does anything (a few seconds at
most), and :func:`describe` turns whatever a broker or Redis client raised later into the
same typed errors.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from kombu import Connection
from kombu.utils.url import maybe_sanitize_url

from mediaapp import defaults
from mediaapp.errors import (
    BackendUnavailable,
    BrokerUnavailable,
    ConfigurationError,
    MediaError,
)
from mediaapp.settings import Settings


def _safe(url: str) -> str:
    return str(maybe_sanitize_url(url))


def broker_error(url: str, exc: BaseException) -> MediaError:
    """The typed error for a broker connection that failed with ``exc``."""
    text = f"{type(exc).__name__}: {exc}"
    where = f"RabbitMQ at {_safe(url)}"
    user = urlsplit(url).username or "guest"
    if "ACCESS_REFUSED" in text or "AccessRefused" in text:
        return ConfigurationError(
            f"{where} refused the login of user {user!r}: check the user and password in "
            "MEDIAAPP_BROKER_URL"
        )
    if "NOT_ALLOWED" in text or "vhost" in text.lower():
        vhost = urlsplit(url).path.lstrip("/") or "/"
        return ConfigurationError(
            f"{where}: vhost {vhost!r} does not exist or user {user!r} may not use it: "
            "create it (rabbitmqctl add_vhost / set_permissions) or fix MEDIAAPP_BROKER_URL"
        )
    reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else text
    return BrokerUnavailable(
        f"{where} is not reachable ({reason[:200]}): is RabbitMQ running there? "
        "Check MEDIAAPP_BROKER_URL"
    )


def backend_error(url: str, exc: BaseException) -> MediaError:
    """The typed error for a result-backend (Redis) call that failed with ``exc``."""
    text = f"{type(exc).__name__}: {exc}"
    where = f"Redis (result backend) at {_safe(url)}"
    if any(
        word in text for word in ("AuthenticationError", "NOAUTH", "WRONGPASS", "invalid password")
    ):
        return ConfigurationError(f"{where} refused the password: check MEDIAAPP_RESULT_BACKEND")
    return BackendUnavailable(
        f"{where} is not reachable ({text[:200]}): is Redis running there? "
        "Check MEDIAAPP_RESULT_BACKEND"
    )


def check_broker(settings: Settings, timeout: float = defaults.SERVICE_CHECK_TIMEOUT_S) -> None:
    """Connect to the broker once (no retries); raise a typed error naming what is wrong."""
    if settings.embedded:
        return
    try:
        with Connection(settings.broker_url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        raise broker_error(settings.broker_url, cause if "refused" in str(exc) else exc) from exc


def check_backend(settings: Settings, timeout: float = defaults.SERVICE_CHECK_TIMEOUT_S) -> None:
    """Ping the Redis result backend once; raise a typed error naming what is wrong."""
    url = settings.result_backend
    if not url.startswith(("redis://", "rediss://")):
        return
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except Exception as exc:
        raise backend_error(url, exc) from exc
    finally:
        client.close()


def describe(exc: BaseException, settings: Settings) -> MediaError | None:
    """A broker or backend failure met after the checks, as a typed error (None: not one)."""
    from celery.exceptions import BackendError
    from redis.exceptions import RedisError

    module = type(exc).__module__ or ""
    if isinstance(exc, RedisError | BackendError):
        return backend_error(settings.result_backend, exc)
    if module.startswith(("amqp", "kombu")) or isinstance(exc, ConnectionError | TimeoutError):
        return broker_error(settings.broker_url, exc)
    if isinstance(exc, RuntimeError) and "Retry limit exceeded" in str(exc):
        return backend_error(settings.result_backend, exc)
    return None
