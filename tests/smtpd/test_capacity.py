"""The session cap (mailhost.smtpd.capacity): master.cf's maxproc per
service and the open file budget, master(8)'s process-limit warning as
recorded from Postfix 3.7.11, rate-limited as master(8) does."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mailhost.fdlimit import FDS_PER_SESSION, RESERVED_FDS, session_budget
from mailhost.smtpd.capacity import WARN_INTERVAL, Capacity

RECORDED = json.loads(Path(__file__).with_name("postfix_caps.json").read_text())


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    out = [f"warning: {r.getMessage()}" for r in caplog.records]
    caplog.clear()
    return out


@pytest.mark.postfix
def test_process_limit_warning_matches_master(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    capacity = Capacity(fd_budget=1000, clock=clock)
    service = capacity.service("PORT", 2, "PORT", local_only=False)
    with caplog.at_level(logging.WARNING, logger="mailhost"):
        slots = [capacity.acquire(service) for _ in range(2)]
        assert not capacity.may_accept(service)
        assert messages(caplog) == RECORDED["process_limit"]["master_log"]
        # once per 1000 seconds
        clock.now += WARN_INTERVAL - 1
        assert not capacity.may_accept(service)
        assert messages(caplog) == []
        clock.now += 2
        assert not capacity.may_accept(service)
        assert len(messages(caplog)) == 3
    slots[0].release()
    slots[0].release()  # once only
    assert capacity.may_accept(service)
    assert (service.sessions, capacity.total) == (1, 1)


@pytest.mark.parametrize(("limit", "local_only"), [(2, True), (1, False)])
def test_no_warning_where_master_gives_none(
    limit: int, local_only: bool, caplog: pytest.LogCaptureFixture
) -> None:
    capacity = Capacity(fd_budget=1000)
    service = capacity.service("smtp", limit, "25", local_only=local_only)
    for _ in range(limit):
        capacity.acquire(service)
    with caplog.at_level(logging.WARNING, logger="mailhost"):
        assert not capacity.may_accept(service)
    assert caplog.records == []


def test_zero_maxproc_means_no_limit() -> None:
    capacity = Capacity(fd_budget=10_000)
    service = capacity.service("smtp", 0, "25", local_only=False)
    for _ in range(5000):
        capacity.acquire(service)
    assert capacity.may_accept(service)


def test_descriptor_budget_caps_every_service_together(caplog: pytest.LogCaptureFixture) -> None:
    capacity = Capacity(fd_budget=3, nofile=1024)
    smtp = capacity.service("smtp", 100, "25", local_only=False)
    submission = capacity.service("submission", 100, "587", local_only=False)
    capacity.acquire(smtp)
    capacity.acquire(submission)
    release = capacity.acquire(submission)
    resumed: list[int] = []
    capacity.on_release.append(lambda: resumed.append(capacity.total))
    with caplog.at_level(logging.WARNING, logger="mailhost"):
        assert not capacity.may_accept(smtp)
        assert not capacity.may_accept(submission)
    assert messages(caplog) == [
        "warning: 3 sessions are what the open file limit (1024) leaves room for: "
        "new clients wait; raise the hard RLIMIT_NOFILE (LimitNOFILE=) for more"
    ]
    release.release()
    assert resumed == [2]
    assert capacity.may_accept(smtp)


def test_reload_keeps_counting_sessions_in_progress() -> None:
    capacity = Capacity(fd_budget=100)
    service = capacity.service("smtp", 2, "25", local_only=False)
    capacity.acquire(service)
    again = capacity.service("smtp", 1, "25", local_only=False)
    assert again is service
    assert not capacity.may_accept(again)


def test_session_budget_reserves_descriptors() -> None:
    assert session_budget(1024, 30) == (1024 - 30 - RESERVED_FDS) // FDS_PER_SESSION
    assert session_budget(100, 90) == 1


def test_sessions_admitted_at_the_limit_run_under_stress_for_1000_seconds() -> None:
    clock = Clock()
    capacity = Capacity(fd_budget=1000, clock=clock)
    service = capacity.service("smtp", 3, "25", local_only=False)
    a, b = capacity.acquire(service), capacity.acquire(service)
    assert (a.stressed, b.stressed) == (False, False)
    c = capacity.acquire(service)  # fills the last slot: stress begins
    assert c.stressed
    c.release()
    b.release()
    clock.now += WARN_INTERVAL - 1
    d = capacity.acquire(service)  # below the limit, still within 1000 s
    assert d.stressed
    d.release()
    clock.now += 2
    assert not capacity.acquire(service).stressed


def test_loopback_services_never_run_under_stress() -> None:
    capacity = Capacity(fd_budget=1000)
    service = capacity.service("127.0.0.1:2525", 2, "127.0.0.1:2525", local_only=True)
    assert [capacity.acquire(service).stressed for _ in range(3)] == [False, False, False]


def test_stress_settings_are_postfix_overload_values() -> None:
    from mailhost.config import Config
    from mailhost.smtpd.deadline import DeadlinePolicy
    from mailhost.smtpd.settings import SmtpdSettings
    from mailhost.smtpd.stress import under_stress

    cfg = Config(Path("/x"), {})
    settings, deadlines = SmtpdSettings.from_config(cfg), DeadlinePolicy.from_config(cfg)
    stressed, stress_deadlines = under_stress(cfg, settings, deadlines)
    assert (stressed.timeout, stressed.hard_error_limit) == (10.0, 1)
    assert stress_deadlines == DeadlinePolicy(10.0, True, 500)
    explicit = Config(Path("/x"), {"smtpd_timeout": "60s", "smtpd_per_request_deadline": "no"})
    _, kept = under_stress(
        explicit, SmtpdSettings.from_config(explicit), DeadlinePolicy.from_config(explicit)
    )
    assert kept == DeadlinePolicy(60.0, False, 500)
