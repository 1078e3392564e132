"""With smtpd_delay_reject, Postfix evaluates the client, HELO and sender
restrictions again at every RCPT (smtpd_check_rcpt() calls
smtpd_check_client(), _helo() and _mail() each time).  mailhost evaluates
them once per transaction when their DUNNO would repeat itself (issue 17:
about half the restriction engine's CPU per RCPT under the Internet-MX
restrictions); these tests hold it to Postfix's answers and log lines
wherever a second evaluation could differ."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from mailhost.resolve.trace import Trace
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.smtpd_check.state import CheckState, Client, Where
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry
from tests.support.checks import StaticFacts

CLIENT = "203.0.113.9"


@dataclass
class CountingFacts(StaticFacts):
    """StaticFacts that counts permit_mynetworks' questions."""

    asked: list[str] = field(default_factory=list)

    async def in_mynetworks(self, name: str, address: str) -> bool:
        self.asked.append(address)
        return await super().in_mynetworks(name, address)


def checks(facts: StaticFacts, registry: TableRegistry | None = None, **lists: str) -> SmtpdChecks:
    names = {f"smtpd_{k}_restrictions": tuple(v.split()) for k, v in lists.items()}
    maps = {}
    if registry is not None:
        for spec in (n for v in names.values() for n in v if ":" in n):
            maps[spec] = Maps.from_value(spec, spec, registry)
    settings = CheckSettings(lists=names, reject_unlisted_recipient=False, maps=maps)
    return SmtpdChecks(settings, facts)


def session(helo: str = "client.test", sender: str = "a@client.test") -> CheckState:
    return CheckState(Client("unknown", CLIENT), sender=sender, helo=helo,
                      where=Where.RCPT, protocol="ESMTP")  # fmt: skip


async def replies(c: SmtpdChecks, state: CheckState, n: int = 3) -> list[str | None]:
    out = []
    for i in range(n):
        reply = await c.rcpt(state, f"u{i}@elsewhere.test")
        out.append(None if reply is None else str(reply))
    return out


async def test_repeatable_early_stages_run_once_per_transaction() -> None:
    facts = CountingFacts()
    c = checks(
        facts,
        client="permit_mynetworks reject_unauth_pipelining",
        helo="reject_invalid_helo_hostname reject_non_fqdn_helo_hostname",
        sender="reject_non_fqdn_sender",
    )
    state = session()
    assert await replies(c, state) == [None, None, None]
    assert facts.asked == [CLIENT]
    # A new transaction (another sender) evaluates them again.
    state.reset_transaction()
    state.sender = "b@client.test"
    assert await replies(c, state) == [None, None, None]
    assert facts.asked == [CLIENT, CLIENT]


async def test_improper_pipelining_seen_at_a_later_rcpt_is_refused() -> None:
    # Postfix re-evaluates reject_unauth_pipelining at every RCPT.
    c = checks(StaticFacts(), client="reject_unauth_pipelining")
    state = session()
    assert await replies(c, state, 1) == [None]
    state.improper_pipelining = True
    (refused,) = await replies(c, state, 1)
    assert refused is not None
    assert refused.startswith("503 5.5.0 ")


async def test_a_table_hit_acts_at_every_rcpt(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mailhost.smtpd")
    registry = TableRegistry()
    try:
        table = "inline:{203.0.113.9=WARN}"
        c = checks(StaticFacts(), registry, client=f"check_client_access {table}")
        assert await replies(c, session()) == [None, None, None]
    finally:
        await registry.close()
    warned = [r for r in caplog.records if "warn: RCPT from" in r.getMessage()]
    assert len(warned) == 3


async def test_warn_if_reject_logs_at_every_rcpt(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mailhost.smtpd")
    c = checks(StaticFacts(), helo="warn_if_reject reject_non_fqdn_helo_hostname")
    assert await replies(c, session(helo="client")) == [None, None, None]
    warned = [r for r in caplog.records if "reject_warning: RCPT from" in r.getMessage()]
    assert len(warned) == 3


async def test_defer_if_permit_in_the_client_stage_defers_every_rcpt() -> None:
    c = checks(StaticFacts(), client="defer_if_permit")
    got = await replies(c, session())
    assert [r[:10] if r is not None else None for r in got] == ["450 4.7.0 "] * 3


async def test_a_traced_session_is_evaluated_at_every_rcpt() -> None:
    facts = CountingFacts()
    c = checks(facts, client="permit_mynetworks")
    state = session()
    state.trace = Trace()
    assert await replies(c, state) == [None, None, None]
    assert facts.asked == [CLIENT] * 3
