"""A DNS server that never answers: every DNS restriction must end in a
temporary outcome (skipped, or a 4xx), never a 5xx.  The silent server is a
real UDP socket on loopback that reads nothing."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from mailhost.log import postfix_text
from mailhost.smtpd_check.dns_lookup import DnsLookup, DnsStatus
from mailhost.smtpd_check.state import CheckState, Client, Where
from tests.support.checks import StaticFacts, static_checks


@pytest.fixture
def silent() -> Iterator[DnsLookup]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        yield DnsLookup([f"127.0.0.1:{port}"], timeout=0.3)


async def rcpt(dns: DnsLookup, *restrictions: str, sender: str = "user@remote.test") -> str:
    checks = static_checks(StaticFacts(dns=dns), smtpd_recipient_restrictions=restrictions)
    state = CheckState(
        Client("client.remote.test", "192.0.2.7", "client.remote.test"),
        helo="helo.remote.test",
        sender=sender,
        where=Where.RCPT,
        protocol="ESMTP",
    )
    reply = await checks.rcpt(state, "user@example.com")
    return str(reply) if reply is not None else "250 2.1.5 Ok"


async def test_a_timeout_is_a_temporary_failure(silent: DnsLookup) -> None:
    found = await silent.lookup("remote.test", "MX")
    assert found.status is DnsStatus.RETRY
    assert found.why == (
        "Host or domain name not found. Name service error for name=remote.test type=MX: "
        "Host not found, try again"
    )


@pytest.mark.parametrize(
    ("restrictions", "expected"),
    [
        (("reject_rbl_client", "bl.test", "permit"), "250 2.1.5 Ok"),
        (("reject_rhsbl_sender", "rhs.test", "permit"), "250 2.1.5 Ok"),
        (
            ("reject_unknown_sender_domain", "permit"),
            "450 4.1.8 <user@remote.test>: Sender address rejected: Domain not found",
        ),
        (
            ("reject_unknown_helo_hostname", "permit"),
            "450 4.7.1 <helo.remote.test>: Helo command rejected: Host not found",
        ),
        (
            ("permit_dnswl_client", "wl.test", "reject"),
            "450 4.7.1 <192.0.2.7>: Client host rejected: Service unavailable",
        ),
        (("check_sender_mx_access", "inline:{x=REJECT}", "permit"), "250 2.1.5 Ok"),
    ],
)
async def test_dns_restrictions_never_reject_on_a_timeout(
    silent: DnsLookup,
    restrictions: tuple[str, ...],
    expected: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="mailhost"):
        reply = await rcpt(silent, *restrictions)
    assert reply == expected
    assert not reply.startswith("5")
    warnings = [postfix_text(r) for r in caplog.records if r.levelno == logging.WARNING]
    if restrictions[0].startswith(("reject_rbl", "reject_rhsbl", "permit_dnswl")):
        assert any("RBL lookup error" in w and "try again" in w for w in warnings)
