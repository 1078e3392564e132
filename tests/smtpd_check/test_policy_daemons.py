"""check_policy_service with the policy daemons Postfix sites run, from
Debian's packages: postgrey (greylisting) and policyd-spf
(postfix-policyd-spf-python, run per connection as Postfix's spawn(8) runs
it).  The replies are recorded from Postfix 3.7.11 with the same daemons
(record_postfix_postgrey.py, record_postfix_policyd_spf.py)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from mailhost.smtpd.handler import instance_id
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.smtpd_check.state import CheckState, Client, Where
from tests.smtp.dnsserver import DnsServer
from tests.smtpd_check.policy_daemons import SpawnBridge, policyd_spf_argv
from tests.support.checks import StaticFacts
from tests.support.maincf import alice_site
from tests.support.server import serve_cli, smtp_session

#: Postfix 3.7.11 with the same postgrey (record_postfix_postgrey.py) and the
#: same policyd-spf under spawn(8) (record_postfix_policyd_spf.py).
POSTGREY = json.loads((Path(__file__).parent / "postfix_postgrey.json").read_text())
POLICYD_SPF = json.loads((Path(__file__).parent / "postfix_policyd_spf.json").read_text())


def policy_checks(service: str) -> SmtpdChecks:
    settings = CheckSettings(
        lists={"smtpd_recipient_restrictions": ("check_policy_service", service)},
        reject_unlisted_recipient=False,
    )
    return SmtpdChecks(settings, StaticFacts())


def rcpt_state(sender: str) -> CheckState:
    """A transaction of its own: policyd-spf caches its verdict per ``instance``."""
    return CheckState(Client("unknown", "192.0.2.7"), helo="client.example.org", sender=sender,
                      where=Where.RCPT, protocol="ESMTP", instance=instance_id())  # fmt: skip


def test_postgrey_greylists_then_accepts_and_marks_the_message(
    tmp_path: Path, postgrey_port: int
) -> None:
    (tmp_path / "main.cf").write_text(
        alice_site(
            tmp_path,
            smtpd_recipient_restrictions=f"check_policy_service inet:127.0.0.1:{postgrey_port}",
        )
    )
    server, port = serve_cli(tmp_path)
    try:
        with smtp_session(port, "first@greylist.example") as client:
            code, text = client.rcpt("alice@example.com")
            assert f"{code} {text.decode()}" == POSTGREY["first"]
        time.sleep(2.2)  # postgrey --delay=1
        with smtp_session(port, "first@greylist.example") as client:
            code, text = client.rcpt("alice@example.com")
            assert f"{code} {text.decode()}" == POSTGREY["retry"]
            code, _ = client.data(b"Subject: greylisted\r\n\r\nhello\r\n")
            assert code == 250
        new = tmp_path / "vmail" / "example.com" / "alice" / "new"
        deadline = time.monotonic() + 20
        while not (new.exists() and any(new.iterdir())):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        # postgrey's PREPEND, added by cleanup above the message's headers
        message = next(new.iterdir()).read_bytes()
    finally:
        server.stop()
    assert POSTGREY["reject_log"][0] in server.log()
    assert b"\nX-Greylist: delayed " in message
    assert b" by postgrey-1.37 at " in message


async def test_postgrey_retry_asks_for_its_x_greylist_header(postgrey_port: int) -> None:
    checks = policy_checks(f"inet:127.0.0.1:{postgrey_port}")
    try:
        first = await checks.rcpt(rcpt_state("second@greylist.example"), "bob@example.com")
        assert str(first).startswith("450 4.2.0 <bob@example.com>: Recipient address rejected: ")
        await asyncio.sleep(2.2)  # postgrey --delay=1
        state = rcpt_state("second@greylist.example")
        assert await checks.rcpt(state, "bob@example.com") is None
    finally:
        checks.settings.policy.close()
    # The PREPEND action, for cleanup to add to the message.
    [header] = state.actions.prepend
    assert header.startswith("X-Greylist: delayed ")
    assert " by postgrey-1.37 at " in header


async def test_policyd_spf_rejects_a_fail_and_prepends_received_spf_on_a_pass(
    tmp_path: Path, spf_dns: DnsServer
) -> None:
    bridge = await SpawnBridge(policyd_spf_argv(tmp_path, spf_dns.port)).start()
    checks = policy_checks(f"inet:127.0.0.1:{bridge.port}")
    try:
        failed = await checks.rcpt(rcpt_state("user@spf-fail.example"), "bob@example.com")
        assert str(failed) == POLICYD_SPF["replies"]["fail"]
        state = rcpt_state("user@spf-pass.example")
        assert await checks.rcpt(state, "bob@example.com") is None  # Postfix: 250
        assert POLICYD_SPF["replies"]["pass"] == "250 2.1.5 Ok"
        assert state.actions.prepend == [
            "Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=192.0.2.7; "
            "helo=client.example.org; envelope-from=user@spf-pass.example; receiver=example.com"
        ]
    finally:
        checks.settings.policy.close()
        await bridge.stop()
    # One policyd-spf for the session's connection, as spawn(8) runs it.
    assert bridge.spawned == 1
