"""The policy client's connection handling (Postfix's attr_clnt/auto_clnt
settings) against the policy peer of our own: reuse, max_idle, max_ttl,
concurrent requests, try_limit and retry_delay, unix sockets; the default
action of a default action; the services named in main.cf opened at start."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from mailhost.attr_plain import print_plain
from mailhost.config import Config
from mailhost.errors import ConfigError
from mailhost.observe import metrics
from mailhost.smtpd_check.policy_client import Endpoint, PolicyClient
from mailhost.smtpd_check.policy_settings import PolicySettings
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.smtpd_check.state import CheckState, Client, Where
from mailhost.tables.registry import TableRegistry
from tests.smtpd_check.policy_peer import PolicyPeer
from tests.support.checks import StaticFacts
from tests.support.net import free_port

REQUEST = print_plain([("request", "smtpd_access_policy"), ("recipient", "bob@example.com")])


def client(peer_service: str, **settings: float | int | str) -> PolicyClient:
    return PolicyClient(Endpoint.parse(peer_service), PolicySettings(**settings))  # type: ignore[arg-type]


async def test_connection_is_reused_and_closed_after_max_idle() -> None:
    peer = await PolicyPeer().start()
    c = client(peer.service, max_idle=0.3)
    try:
        assert await c.request(REQUEST) == b"DUNNO"
        assert await c.request(REQUEST) == b"DUNNO"
        assert (peer.connections, c.idle) == (1, 1)
        await asyncio.sleep(0.5)
        assert c.idle == 0
        assert await c.request(REQUEST) == b"DUNNO"
        assert peer.connections == 2
    finally:
        c.close()
        await peer.stop()


async def test_max_ttl_is_counted_from_the_connect() -> None:
    peer = await PolicyPeer().start()
    c = client(peer.service, max_ttl=0.3)
    try:
        await c.request(REQUEST)
        await asyncio.sleep(0.2)
        await c.request(REQUEST)
        await asyncio.sleep(0.2)
        await c.request(REQUEST)
        assert peer.connections == 2
    finally:
        c.close()
        await peer.stop()


async def test_concurrent_requests_get_their_own_connections() -> None:
    peer = await PolicyPeer().start()
    c = client(peer.service)
    try:
        answers = await asyncio.gather(*(c.request(REQUEST) for _ in range(3)))
        assert answers == [b"DUNNO"] * 3
        assert (peer.connections, c.idle) == (3, 3)
        await c.request(REQUEST)
        assert peer.connections == 3
    finally:
        c.close()
        await peer.stop()


async def test_try_limit_and_retry_delay(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mailhost")
    peer = await PolicyPeer(behaviour="close").start()
    c = client(peer.service, try_limit=3, retry_delay=0.2)
    try:
        started = asyncio.get_running_loop().time()
        assert await c.request(REQUEST) is None
        assert asyncio.get_running_loop().time() - started >= 0.4
        assert peer.connections == 3
    finally:
        c.close()
        await peer.stop()
    assert [r.getMessage() for r in caplog.records] == [
        f"problem talking to server 127.0.0.1:{peer.port}: Application error"
    ]


async def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "policy"
    peer = await PolicyPeer(reply=b"action=REJECT no\n\n").start_unix(str(path))
    c = PolicyClient(Endpoint.parse("unix:policy", str(tmp_path)), PolicySettings())
    try:
        assert await c.request(REQUEST) == b"REJECT no"
    finally:
        c.close()
        await peer.stop()


async def test_a_failing_default_action_falls_back_to_the_built_in_one() -> None:
    dead = f"{{ inet:127.0.0.1:{free_port()}, try_limit=1, default_action=fallback }}"
    settings = CheckSettings(
        lists={"smtpd_recipient_restrictions": ("check_policy_service", dead)},
        classes={"fallback": ("check_policy_service", dead)},
        reject_unlisted_recipient=False,
    )
    checks = SmtpdChecks(settings, StaticFacts())
    state = CheckState(Client("unknown", "192.0.2.7"), sender="a@b.example", where=Where.RCPT)
    assert str(await checks.rcpt(state, "bob@example.com")) == (
        "451 4.3.5 <bob@example.com>: Recipient address rejected: Server configuration problem"
    )
    assert state.policy_nesting == 0


def test_services_are_opened_at_start_with_main_cf_settings(tmp_path: Path) -> None:
    cfg = Config(tmp_path, {
        "smtpd_recipient_restrictions": "check_policy_service inet:127.0.0.1:10023, "
                                        "check_policy_service { unix:private/spf, timeout=5s }",
        "smtpd_policy_service_timeout": "20s",
        "smtpd_policy_service_try_limit": "1",
        "queue_directory": str(tmp_path),
    })  # fmt: skip
    settings = CheckSettings.from_config(cfg, TableRegistry.from_config(cfg))
    clients = settings.policy.clients
    assert clients["inet:127.0.0.1:10023"].settings == PolicySettings(timeout=20, try_limit=1)
    spf = clients["{ unix:private/spf, timeout=5s }"]
    assert spf.endpoint.path == f"{tmp_path}/private/spf"
    assert spf.settings == PolicySettings(timeout=5, try_limit=1)


def test_a_bad_service_is_a_configuration_error_at_start(tmp_path: Path) -> None:
    cfg = Config(tmp_path, {"smtpd_recipient_restrictions": "check_policy_service tcp:x:1"})
    with pytest.raises(ConfigError, match="invalid transport name: tcp"):
        CheckSettings.from_config(cfg, TableRegistry.from_config(cfg))


async def test_refused_on_every_address_of_a_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mailhost")
    port = free_port()
    c = client(f"inet:localhost:{port}", try_limit=1)
    assert await c.request(REQUEST) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"connect to localhost:{port}: Connection refused",
        f"problem talking to server localhost:{port}: Connection refused",
    ]


async def test_requests_are_counted_as_lookups() -> None:
    metrics.reset()
    peer = await PolicyPeer().start()
    c = client(peer.service)
    dead = client(f"inet:127.0.0.1:{free_port()}", try_limit=1)
    try:
        await c.request(REQUEST)
        await dead.request(REQUEST)
    finally:
        c.close()
        await peer.stop()
    lookups = metrics.snapshot().lookups
    assert lookups[("check_policy_service", "inet", "found")].count == 1
    assert lookups[("check_policy_service", "inet", "error")].count == 1
