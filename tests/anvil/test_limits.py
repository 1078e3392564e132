"""smtpd's view of the limits (mailhost.smtpd.limits) on a table of its own:
which clients are counted, and what an exceptions table that fails does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mailhost.anvil.client import LocalAnvil
from mailhost.config import load_config
from mailhost.smtpd.limits import NO_EVENTS, ClientLimits, LimitSettings
from mailhost.tables.registry import TableRegistry


def limits(tmp_path: Path, extra: str) -> ClientLimits:
    (tmp_path / "main.cf").write_text(
        "mynetworks = 192.0.2.0/24\nsmtpd_client_connection_rate_limit = 1\n" + extra
    )
    cfg = load_config(tmp_path)
    return ClientLimits(
        LimitSettings.from_config(cfg, TableRegistry()), LocalAnvil(60, 600), "smtp", "mx.test"
    )


async def test_mynetworks_is_excepted_by_default(tmp_path: Path) -> None:
    checks = limits(tmp_path, "")
    assert await checks.session("a[192.0.2.1]", "192.0.2.1") is NO_EVENTS
    events = await checks.session("b[198.51.100.1]", "198.51.100.1")
    assert await events.connect() is None
    again = await checks.session("b[198.51.100.1]", "198.51.100.1")
    refused = await again.connect()
    assert str(refused) == "421 4.7.0 mx.test Error: too many connections from 198.51.100.1"


async def test_no_limit_counts_nothing(tmp_path: Path) -> None:
    checks = limits(tmp_path, "smtpd_client_connection_count_limit = 0\n"
                    "smtpd_client_connection_rate_limit = 0\n")  # fmt: skip
    assert await checks.session("b[198.51.100.1]", "198.51.100.1") is NO_EVENTS


async def test_exceptions_table_that_fails_counts_the_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checks = limits(tmp_path, "smtpd_client_event_limit_exceptions = fail:broken\n")
    with caplog.at_level(logging.WARNING):
        events = await checks.session("b[198.51.100.1]", "198.51.100.1")
    assert events is not NO_EVENTS
    assert any("smtpd_client_event_limit_exceptions" in r.getMessage() for r in caplog.records)


async def test_exceptions_table_lists_a_client(tmp_path: Path) -> None:
    checks = limits(tmp_path, "smtpd_client_event_limit_exceptions = inline:{198.51.100.1=ok}\n")
    assert await checks.session("b[198.51.100.1]", "198.51.100.1") is NO_EVENTS
    assert await checks.session("c[198.51.100.2]", "198.51.100.2") is not NO_EVENTS
