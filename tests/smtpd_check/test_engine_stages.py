"""The stage logic of the restriction engine with an in-memory Facts:
first decision wins, warn_if_reject, defer_if_permit/defer_if_reject carried
to the end of the stage, restriction classes, configuration errors
(Postfix's generic_checks() and smtpd_check_rcpt() semantics)."""

from __future__ import annotations

import logging

import pytest

from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.smtpd_check.state import CheckState, Client, Where
from tests.support.checks import StaticFacts


def checks(**lists: str) -> SmtpdChecks:
    settings = CheckSettings(
        lists={f"smtpd_{k}_restrictions": tuple(v.split()) for k, v in lists.items()},
        reject_unlisted_recipient=False,
        classes={"friendly": ("permit",), "hostile": ("reject",)},
    )
    return SmtpdChecks(settings, StaticFacts())


def state(address: str = "203.0.113.9", sender: str = "a@client.test") -> CheckState:
    return CheckState(Client("unknown", address), sender=sender, helo="client.test",
                      where=Where.RCPT, protocol="ESMTP")  # fmt: skip


async def rcpt(c: SmtpdChecks, recipient: str = "x@elsewhere.test", **kw: str) -> str | None:
    reply = await c.rcpt(state(**kw), recipient)
    return None if reply is None else str(reply)


async def test_relay_is_denied_and_mynetworks_permits() -> None:
    c = checks(relay="permit_mynetworks reject_unauth_destination")
    assert await rcpt(c) == "554 5.7.1 <x@elsewhere.test>: Relay access denied"
    assert await rcpt(c, address="127.0.0.1") is None


async def test_warn_if_reject_logs_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mailhost.smtpd")
    c = checks(relay="warn_if_reject reject_unauth_destination permit")
    assert await rcpt(c) is None
    assert "reject_warning: RCPT from unknown[203.0.113.9]: 554 5.7.1" in caplog.text


async def test_defer_if_permit_turns_a_later_permit_into_450() -> None:
    c = checks(relay="defer_if_permit permit")
    assert await rcpt(c) == (
        "450 4.7.0 <x@elsewhere.test>: Recipient address rejected: defer_if_permit requested"
    )


async def test_defer_if_reject_turns_a_later_reject_into_450() -> None:
    c = checks(relay="defer_if_reject reject")
    assert await rcpt(c) == (
        "450 4.7.0 <x@elsewhere.test>: Recipient address rejected: defer_if_reject requested"
    )


async def test_restriction_classes_are_evaluated_in_place() -> None:
    assert await rcpt(checks(relay="hostile permit")) == (
        "554 5.7.1 <x@elsewhere.test>: Recipient address rejected: Access denied"
    )
    assert await rcpt(checks(relay="friendly reject")) is None


async def test_unknown_restriction_is_451_4_3_5() -> None:
    assert await rcpt(checks(relay="no_such_thing")) == "451 4.3.5 Server configuration error"


async def test_bare_table_in_data_restrictions_is_a_configuration_error() -> None:
    c = checks(data="hash:/nonexistent")
    assert str(await c.data(state())) == "451 4.3.5 Server configuration error"


async def test_client_list_rejects_at_rcpt_with_delay_reject() -> None:
    c = checks(client="reject", relay="permit")
    assert await rcpt(c) == (
        "554 5.7.1 <unknown[203.0.113.9]>: Client host rejected: Access denied"
    )


async def test_bare_postmaster_is_never_judged() -> None:
    assert await rcpt(checks(relay="reject"), "postmaster") is None


async def test_soft_bounce_makes_5xx_4xx() -> None:
    c = checks(relay="reject")
    c.settings.soft_bounce = True
    assert (
        await rcpt(c) == "454 4.7.1 <x@elsewhere.test>: Recipient address rejected: Access denied"
    )


async def test_multi_recipient_bounce() -> None:
    c = checks(data="reject_multi_recipient_bounce")
    s = state(sender="")
    s.rcpt_count = 2
    s.where = Where.DATA
    assert str(await c.data(s)) == (
        "550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce"
    )
    s.rcpt_count = 1
    assert await c.data(s) is None
