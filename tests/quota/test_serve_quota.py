"""End to end through ``mailhost serve`` (smtpd + qmgr + virtual): the quota
is judged at RCPT TO on the final mailboxes after alias expansion (with the
client's SIZE=), and at delivery, where a message that would cross the
limit is bounced with 5.2.2."""

from __future__ import annotations

import os
from pathlib import Path

from mailhost.quota.maildirsize import FILENAME, parse_maildirsize, scan_usage
from tests.support.maincf import serve_site
from tests.support.server import queued_as, serve_cli, smtp_session

FULL = "Recipient address rejected: Quota exceeded (mailbox for user is full)"


def prefill(maildir: Path, limit: int) -> None:
    """A mailbox exactly at its limit, as Dovecot would have left it."""
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    (maildir / FILENAME).write_bytes(f"{limit}S\n{limit} 3\n".encode())
    if os.geteuid() == 0:  # the recipient's (uid 5000), as virtual(8) needs it
        for path in [maildir, *maildir.rglob("*")]:
            os.chown(path, 5000, 5000)


def body(size: int) -> bytes:
    head = b"Subject: quota\r\n\r\n"
    return head + b"x" * (size - len(head) - 2) + b"\r\n"


def test_quota_at_rcpt_and_at_delivery(tmp_path: Path) -> None:
    base = tmp_path / "vmail"
    base.mkdir()
    (tmp_path / "main.cf").write_text(
        serve_site(
            tmp_path,
            "inline:{bob@example.com=example.com/bob/, carol@example.com=example.com/carol/, "
            "dave@example.com=example.com/dave/, frank@example.com=example.com/frank/}",
            virtual_alias_maps=f"texthash:{base}/virtual",
            virtual_mailbox_limit_maps=(
                "inline:{bob@example.com=1000, carol@example.com=10000, dave@example.com=700}, "
                f"hash:{base}/missing-limits"
            ),
        )
    )
    (base / "virtual").write_text(
        "info@example.com bob@example.com\nteam@example.com bob@example.com, carol@example.com\n"
    )
    prefill(base / "example.com" / "bob", 1000)
    server, port = serve_cli(tmp_path)
    try:
        with smtp_session(port) as client:
            # Already full: refused, directly and through an alias to it alone.
            assert client.rcpt("bob@example.com") == (
                554,
                f"5.2.2 <bob@example.com>: {FULL}".encode(),
            )
            assert client.rcpt("Info@example.com") == (
                554,
                f"5.2.2 <Info@example.com>: {FULL}".encode(),
            )
            # A fan-out with one full member is accepted; delivery sorts it out.
            assert client.rcpt("team@example.com")[0] == 250
            # A quota table outage is a temporary lookup failure.
            assert client.rcpt("frank@example.com") == (
                451,
                b"4.3.0 <frank@example.com>: Temporary lookup failure",
            )
            code, reply = client.data(body(300))
            assert code == 250
            team_qid = queued_as(reply)
            client.rset()

            # SIZE= larger than the room left: refused before any data is sent.
            client.mail("sender@client.test", ["SIZE=20000"])
            assert client.rcpt("carol@example.com")[0] == 554
            client.rset()
            client.mail("sender@client.test", ["SIZE=300"])
            assert client.rcpt("dave@example.com")[0] == 250
            code, reply = client.data(body(300))
            assert code == 250
            client.rset()

            # dave has room (so RCPT passes) but not for this message.
            client.mail("sender@client.test")
            assert client.rcpt("dave@example.com")[0] == 250
            code, reply = client.data(body(500))
            assert code == 250
            crossing_qid = queued_as(reply)
        log = server.wait_log(f"{crossing_qid}: removed")
        log = server.wait_log(f"{team_qid}: removed")
    finally:
        assert server.stop() == 0
    assert (
        "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 554 5.2.2 <bob@example.com>: "
        f"{FULL}; from=<sender@client.test> to=<bob@example.com> proto=ESMTP helo=<client.test>"
    ) in log
    bounced = "dsn=5.2.2, status=bounced (Quota exceeded (mailbox for user is full))"
    assert f"{team_qid}: to=<bob@example.com>, orig_to=<team@example.com>, relay=virtual" in log
    assert any(
        f"{team_qid}: to=<bob@example.com>" in line and bounced in line for line in log.splitlines()
    ), log
    assert any(
        f"{team_qid}: to=<carol@example.com>" in line and "status=sent" in line
        for line in log.splitlines()
    ), log
    assert any(
        f"{crossing_qid}: to=<dave@example.com>" in line and bounced in line
        for line in log.splitlines()
    ), log
    dave = base / "example.com" / "dave"
    assert len(list((dave / "new").iterdir())) == 1
    parsed = parse_maildirsize((dave / FILENAME).read_bytes())
    assert parsed is not None
    assert parsed.usage == scan_usage(dave)[0]
    assert parsed.usage.bytes <= 700
