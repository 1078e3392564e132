"""mailhost's quota-status policy service (mailhost/quota/status_service.py).

* Real Postfix 3.7.11 in front of it refuses at RCPT exactly what it refuses
  in front of Dovecot 2.3.19's quota-status for the same mailbox states
  (both recorded: postfix_mailhost_quota_status.json by
  record_postfix_mailhost_quota_status.py, postfix_quota_status.json by
  record_postfix_quota_status.py);
* the service answers the recorded actions, over a real loopback
  connection, and mailhost's own smtpd using it through
  ``check_policy_service`` gives Postfix's recorded replies;
* mailhost's built-in RCPT quota check refuses the same addresses (alias
  fan-out included);
* ``mailhost serve`` starts it from a master.cf line.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailhost.address import parse_path
from mailhost.attr_plain import print_plain
from mailhost.config import load_config
from mailhost.config.mastercf import parse_master_cf
from mailhost.quota.rcpt import RcptQuotaCheck
from mailhost.quota.status_service import QuotaStatusService
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.smtpd_check.state import CheckState, Client, Where
from mailhost.tables.registry import TableRegistry
from tests.quota.status_site import CASES, DOVECOT, write_site
from tests.support.checks import StaticFacts
from tests.support.net import free_port
from tests.support.server import serve_cli

HERE = Path(__file__).parent
RECORDED = json.loads((HERE / "postfix_mailhost_quota_status.json").read_text())
OK = "250 2.1.5 Ok"


def test_postfix_refuses_with_mailhost_what_it_refuses_with_dovecot() -> None:
    for case, reply in DOVECOT["replies"].items():
        assert RECORDED["replies"][case] == reply, case


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[QuotaStatusService, int]]:
    write_site(tmp_path)
    cfg = load_config(tmp_path)
    registry = TableRegistry.from_config(cfg)
    quota_status = QuotaStatusService.from_config(cfg, registry)
    port = free_port()
    await quota_status.listen(
        parse_master_cf(f"127.0.0.1:{port} inet n - n - - quota-status\n")[0], str(tmp_path)
    )
    yield quota_status, port
    await quota_status.close()
    await registry.close()


@pytest.mark.parametrize("case", sorted(CASES))
async def test_quota_status_answers_as_recorded(
    service: tuple[QuotaStatusService, int], case: str
) -> None:
    quota_status, _ = service
    size, rcpt = CASES[case]
    request = {"request": "smtpd_access_policy", "recipient": rcpt, "size": str(size or 0)}
    assert await quota_status.action(request) == RECORDED["actions"][case]


@pytest.mark.parametrize("case", sorted(CASES))
async def test_mailhost_smtpd_with_its_quota_status_matches_postfix(
    service: tuple[QuotaStatusService, int], case: str
) -> None:
    _, port = service
    size, rcpt = CASES[case]
    checks = SmtpdChecks(
        CheckSettings(
            lists={"smtpd_recipient_restrictions": (
                "check_policy_service", f"inet:127.0.0.1:{port}")},
            reject_unlisted_recipient=False,
        ),
        StaticFacts(),
    )  # fmt: skip
    state = CheckState(Client("localhost", "127.0.0.1"), helo="client.example.org",
                       sender="sender@example.org", where=Where.RCPT, protocol="ESMTP",
                       size=size or 0)  # fmt: skip
    reply = await checks.rcpt(state, parse_path(f"<{rcpt}>"))
    checks.settings.policy.close()
    assert (OK if reply is None else str(reply)) == RECORDED["replies"][case]


@pytest.mark.parametrize(
    "case", sorted(c for c in CASES if c not in ("unknown_user", "other_domain"))
)
async def test_mailhost_rcpt_quota_refuses_the_same_addresses(tmp_path: Path, case: str) -> None:
    write_site(tmp_path)
    cfg = load_config(tmp_path)
    registry = TableRegistry.from_config(cfg)
    check = RcptQuotaCheck.from_config(
        cfg, registry, Resolver(ResolverSettings.from_config(cfg, registry))
    )
    assert check is not None
    size, rcpt = CASES[case]
    reply = await check.check(parse_path(f"<{rcpt}>"), size or 0)
    assert (OK if reply is None else str(reply)) == RECORDED["replies"][case]
    await registry.close()


async def test_request_without_recipient_is_dunno_and_connection_is_reused(
    service: tuple[QuotaStatusService, int],
) -> None:
    quota_status, port = service
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(print_plain([("request", "smtpd_access_policy")]))
    assert await reader.readuntil(b"\n\n") == b"action=DUNNO\n\n"
    writer.write(print_plain([("recipient", "full@example.com")]))
    assert await reader.readuntil(b"\n\n") == (
        b"action=554 5.2.2 Quota exceeded (mailbox for user is full)\n\n"
    )
    writer.close()
    assert quota_status.requests == 2


def test_mailhost_serve_starts_quota_status_from_master_cf(tmp_path: Path) -> None:
    write_site(tmp_path, f"queue_directory = {tmp_path}/queue\nmynetworks = 192.0.2.0/24\n")
    port = free_port()
    server, _ = serve_cli(tmp_path, f"127.0.0.1:{port} inet n - n - - quota-status\n")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(print_plain([("recipient", "allfull@example.com"), ("size", "10")]))
            answer = b""
            while not answer.endswith(b"\n\n"):
                chunk = sock.recv(4096)
                assert chunk
                answer += chunk
        assert answer == b"action=554 5.2.2 Quota exceeded (mailbox for user is full)\n\n"
    finally:
        server.stop()
    assert "is not run by mailhost" not in server.log()


async def test_a_table_failure_is_defer_if_permit(tmp_path: Path) -> None:
    write_site(tmp_path, f"virtual_mailbox_limit_maps = hash:{tmp_path}/missing-limits\n")
    cfg = load_config(tmp_path)
    registry = TableRegistry.from_config(cfg)
    quota_status = QuotaStatusService.from_config(cfg, registry)
    request = {"recipient": "half@example.com", "size": "10"}
    assert await quota_status.action(request) == "DEFER_IF_PERMIT Temporary lookup failure"
    await registry.close()
