"""Fair share's pure parts: the demotion rule, tenant names, the share and cap settings, the
tenant on upload events and in the metrics."""

from __future__ import annotations

import pytest

from mediaapp import defaults
from mediaapp.errors import ConfigurationError, InvalidInput
from mediaapp.jobs.tenants import check_tenant, effective_priority
from mediaapp.settings import Settings

pytestmark = pytest.mark.unit


def test_a_tenant_without_backlog_keeps_its_priority() -> None:
    assert effective_priority(5, 0, 1) == 5
    assert effective_priority(9, 0, 1) == 9
    assert effective_priority(0, 0, 1) == 0


def test_the_backlog_demotes_one_level_per_share() -> None:
    assert [effective_priority(5, n, 1) for n in range(8)] == [5, 4, 3, 2, 1, 0, 0, 0]
    assert [effective_priority(5, n, 2) for n in range(6)] == [5, 5, 4, 4, 3, 3]


def test_an_urgent_job_still_overtakes_its_own_tenants_backlog() -> None:
    # Demotion stops at FAIR_SHARE_MAX_DEMOTION levels: a 9 under a deep backlog is 4, above
    # the backlog's 0 and below a fresh tenant's default 5.
    deep = effective_priority(9, 1000, 1)
    assert deep == 9 - defaults.FAIR_SHARE_MAX_DEMOTION
    assert effective_priority(5, 1000, 1) < deep < effective_priority(5, 0, 1)


@pytest.mark.parametrize("name", ["acme", "tenant-42", "a.b_c", "user@example.org"])
def test_safe_tenant_names_pass(name: str) -> None:
    assert check_tenant(name) == name


@pytest.mark.parametrize("name", ["a b", "a:b", "x" * 65, "../etc", 42, "é"])
def test_unsafe_tenant_names_are_refused(name: object) -> None:
    with pytest.raises(InvalidInput):
        check_tenant(name)


def test_no_tenant_is_none() -> None:
    assert check_tenant(None) is None and check_tenant("") is None


def test_shares_and_caps_are_settings_with_per_tenant_overrides() -> None:
    s = Settings.from_env({"MEDIAAPP_TENANT_SHARE": "2", "MEDIAAPP_TENANT_SHARES": "big=8",
                           "MEDIAAPP_TENANT_MAX_RUNNING": "3",
                           "MEDIAAPP_TENANT_CAPS": "big=1, small=0"})  # fmt: skip
    assert (s.share_of("big"), s.share_of("other")) == (8, 2)
    assert (s.cap_of("big"), s.cap_of("small"), s.cap_of("other")) == (1, 0, 3)
    default = Settings.from_env({})
    assert default.share_of("x") == defaults.TENANT_SHARE
    assert default.cap_of("x") == defaults.TENANT_MAX_RUNNING


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("MEDIAAPP_TENANT_CAPS", "big"),
        ("MEDIAAPP_TENANT_SHARES", "big=x"),
        ("MEDIAAPP_TENANT_SHARE", "0"),
    ],
)
def test_bad_fair_share_settings_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=var):
        Settings.from_env({var: value})


def test_an_upload_event_carries_its_tenant() -> None:
    from mediaapp.jobs.uploads import upload_to_job

    assert upload_to_job({"file": "clip.mp4", "tenant": "acme"})["tenant"] == "acme"
    assert upload_to_job({"file": "clip.mp4"})["tenant"] is None
    with pytest.raises(InvalidInput, match="'tenant'"):
        upload_to_job({"file": "clip.mp4", "tenant": "no spaces"})


def test_metrics_count_jobs_starts_and_deferrals_by_tenant() -> None:
    from mediaapp.ops.metrics import PipelineMetrics

    metrics = PipelineMetrics()

    def event(name: str, **body: object) -> None:
        metrics.observe({"kind": "event", "name": name, "body": body})

    event("task.started", task="video.probe", tenant="acme")
    event("task.deferred", task="video.probe", tenant="acme")
    event("job.finished", task="video.probe", tenant="acme", state="SUCCESS")
    event("job.cancelled", tenant="acme")
    event("job.finished", task="video.probe", state="SUCCESS")  # no tenant: not counted
    value = metrics.registry.get_sample_value
    assert value("mediaapp_tenant_steps_started_total", {"tenant": "acme"}) == 1
    assert value("mediaapp_tenant_deferred_total", {"tenant": "acme"}) == 1
    assert value("mediaapp_tenant_jobs_total", {"tenant": "acme", "state": "SUCCESS"}) == 1
    assert value("mediaapp_tenant_jobs_total", {"tenant": "acme", "state": "CANCELLED"}) == 1
    assert value("mediaapp_jobs_total", {"state": "SUCCESS"}) == 2
