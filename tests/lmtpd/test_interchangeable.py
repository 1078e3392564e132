"""Dovecot LMTP and mailhost's lmtpd are interchangeable behind an edge:
mailhost's own ``lmtp`` transport (``virtual_transport =
lmtp:inet:127.0.0.1:PORT``) delivering to either gives every recipient the
same outcome — delivered, deferred or bounced, with the same dsn and the
same reply in the reason — for success, an unknown user, a full mailbox (bounced, or deferred with
Dovecot's quota_full_tempfail and mailhost_quota_overquota_bounce = no),
and two recipients of which one fails (at RCPT, or after DATA)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.lmtpd.conftest import DovecotLmtp, Lmtpd, start_lmtpd
from tests.lmtpd.site import MAILBOXES, TEMPFAIL, TEMPFAIL_OPTION, write_mailhost_site
from tests.qmgr.helpers import Site, captured_log

CASES = {
    "success": ("alice@example.com",),
    "unknown_user": ("nobody@example.com",),
    "over_quota": ("full@example.com",),
    "one_of_two_fails_at_rcpt": ("alice@example.com", "full@example.com"),
    "one_of_two_fails_after_data": ("bob@example.com", "tight@example.com"),
    # deferred: Dovecot's quota_full_tempfail, mailhost_quota_overquota_bounce = no
    "over_quota_deferred": ("tempfull@example.com",),
    "one_of_two_deferred_after_data": ("alice@example.com", "temptight@example.com"),
}
_LINE = re.compile(r"^lmtp: \w+: to=<([^>]*)>, .*?dsn=([^,]+), status=(\w+) \((.*)\)$")
_PEER = re.compile(r"\[127\.0\.0\.1\]:\d+")
_SAVED = re.compile(r"(250 2\.0\.0 <[^>]*>) \S+ Saved")


async def outcomes(
    directory: Path, port: int | str, recipients: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    """recipient -> (dsn, status, reason) as the edge's lmtp transport logs
    them; ``port`` is a loopback TCP port or a unix socket's path."""
    mailboxes = ", ".join(f"{name}@example.com=x" for name in [*MAILBOXES, "nobody"])
    site = Site(
        directory,
        extra=(
            f"virtual_transport = {where(port)}\n"
            f"virtual_mailbox_maps = inline:{{{mailboxes}}}\n"
            "lmtp_connection_cache_time_limit = 0s\n"
        ),
    )
    await site.enqueue(*recipients)
    with captured_log() as log:
        await site.manager().run_once()
    found: dict[str, tuple[str, ...]] = {}
    for line in log.lines:
        match = _LINE.match(line)
        if match:
            reason = _SAVED.sub(r"\1 ID Saved", _PEER.sub("[127.0.0.1]:PORT", match.group(4)))
            found[match.group(1)] = (match.group(2), match.group(3), reason)
    assert set(found) == set(recipients), log.text()
    return found


@pytest.mark.parametrize("case", sorted(CASES))
async def test_lmtp_transport_outcome_matches_dovecot_lmtp(
    tmp_path: Path, dovecot_lmtp: DovecotLmtp, lmtpd: Lmtpd, case: str
) -> None:
    recipients = CASES[case]
    (tmp_path / "dovecot-edge").mkdir()
    (tmp_path / "mailhost-edge").mkdir()
    dovecot = await outcomes(tmp_path / "dovecot-edge", dovecot_lmtp.port, recipients)
    if any(r.split("@")[0] in TEMPFAIL for r in recipients):
        (tmp_path / "tempfail-store").mkdir()
        write_mailhost_site(tmp_path / "tempfail-store")
        store = await start_lmtpd(tmp_path / "tempfail-store", TEMPFAIL_OPTION)
        try:
            mailhost = await outcomes(tmp_path / "mailhost-edge", store.port, recipients)
        finally:
            await store.close()
    else:
        mailhost = await outcomes(tmp_path / "mailhost-edge", lmtpd.port, recipients)
    assert mailhost == dovecot


def where(port: int | str) -> str:
    return f"lmtp:inet:127.0.0.1:{port}" if isinstance(port, int) else f"lmtp:unix:{port}"


async def test_lmtp_transport_to_lmtpd_over_a_unix_socket(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "edge").mkdir()
    write_mailhost_site(tmp_path / "store")
    store = await start_lmtpd(tmp_path / "store", line="private/lmtpd unix - - n - - lmtpd\n")
    socket = tmp_path / "store" / "queue" / "private" / "lmtpd"
    try:
        found = await outcomes(
            tmp_path / "edge", str(socket), ("alice@example.com", "nobody@example.com")
        )
    finally:
        await store.close()
    assert found["alice@example.com"][:2] == ("2.0.0", "sent")
    assert found["nobody@example.com"][:2] == ("5.1.1", "bounced")
