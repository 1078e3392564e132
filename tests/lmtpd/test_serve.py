"""``mailhost serve`` runs lmtpd from master.cf: an ``inet`` line and a
``unix`` line below queue_directory, without the "not run by mailhost"
warning, logging as ``mailhost/lmtpd[PID]``; and lmtpd takes exactly the
recipients the same host's smtpd takes at RCPT TO (one resolver)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import trustme

from tests.lmtpd.site import MESSAGE, LmtpClient, session, write_mailhost_site
from tests.support.net import free_port
from tests.support.server import ServerProcess, serve_cli, smtp_session


async def test_mailhost_serve_starts_lmtpd_from_master_cf(tmp_path: Path) -> None:
    write_mailhost_site(tmp_path, "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n")
    port = free_port()
    server, _ = serve_cli(
        tmp_path,
        f"127.0.0.1:{port} inet n - n - - lmtpd\nprivate/lmtpd unix - - n - - lmtpd\n",
    )
    try:
        answers = await session(port, ["alice@example.com", "nobody@example.com"])
        assert answers[-2].startswith("250 2.0.0 <alice@example.com> ")
        reader, writer = await asyncio.open_unix_connection(
            str(tmp_path / "queue" / "private" / "lmtpd")
        )
        client = LmtpClient(reader, writer)
        await client.reply()
        for line in ("LHLO edge", "MAIL FROM:<>", "RCPT TO:<bob@example.com>", "DATA"):
            await client.command(line)
        (answer,) = await client.data(MESSAGE, 1)
        assert answer.startswith("250 2.0.0 <bob@example.com> ")
        await client.close()
        log = server.wait_log("to=<bob@example.com>, relay=virtual")
    finally:
        server.stop()
    assert re.search(r"mailhost/lmtpd\[\d+\]: \w+: to=<alice@example\.com>, relay=virtual, ", log)
    assert "is not run by mailhost" not in server.log()
    assert len(list((tmp_path / "vmail" / "example.com" / "bob" / "new").iterdir())) == 1


#: Recipients smtpd and lmtpd judge alike: mailboxes (case, extension), an
#: alias, a catch-all domain, unknown users, another domain, a full mailbox.
RECIPIENTS = [
    "alice@example.com", "ALICE@Example.COM", "alice+news@example.com", "team@example.com",
    "anyone@catchall.example", "nobody@example.com", "nobody+x@example.com",
    "someone@elsewhere.example", "full@example.com", "tight@example.com",
]  # fmt: skip


async def test_lmtpd_takes_the_recipients_smtpd_takes(tmp_path: Path) -> None:
    write_mailhost_site(
        tmp_path,
        "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nrecipient_delimiter = +\n"
        "mynetworks = 192.0.2.0/24\n"
        "virtual_alias_domains = catchall.example\n"
        "virtual_alias_maps = inline:{{team@example.com=alice@example.com,bob@example.com},"
        " {@catchall.example=alice@example.com}}\n",
    )
    port = free_port()
    server, smtp_port = serve_cli(tmp_path, f"127.0.0.1:{port} inet n - n - - lmtpd\n")
    try:
        client, _ = await LmtpClient.connect(port)
        await client.command("LHLO edge")
        await client.command("MAIL FROM:<s@client.test>")
        lmtp = [r for r in RECIPIENTS if (await client.command(f"RCPT TO:<{r}>"))[0] == "2"]
        await client.close()
        with smtp_session(smtp_port, "s@client.test") as smtp:
            esmtp = [r for r in RECIPIENTS if smtp.rcpt(r)[0] == 250]
    finally:
        server.stop()
    # Refusal codes differ where the servers' roles do: smtpd defers the
    # other domain (defer_unauth_destination), lmtpd has no such user.
    assert lmtp == esmtp == [*RECIPIENTS[:5], "tight@example.com"]


async def test_a_store_runs_lmtpd_without_any_smtpd(tmp_path: Path) -> None:
    # examples/cluster/store/master.cf: lmtpd, quota-status, qmgr, virtual; no smtpd.
    write_mailhost_site(tmp_path, "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n")
    lmtp, policy = free_port(), free_port()
    (tmp_path / "master.cf").write_text(
        f"127.0.0.1:{lmtp} inet n - n - - lmtpd\n"
        f"127.0.0.1:{policy} inet n - n - - quota-status\n"
        "qmgr unix n - n 300 1 qmgr\nvirtual unix - n n - - virtual\n"
    )
    server = ServerProcess(tmp_path, {}, trustme.CA(), tmp_path / "maillog")
    server.queue_kind = "cli"
    server.start()
    try:
        answers = await session(lmtp, ["alice@example.com"])
        server.wait_log("to=<alice@example.com>, relay=virtual")
    finally:
        server.stop()
    assert answers[-2].startswith("250 2.0.0 <alice@example.com> ")
    assert "smtpd" not in (tmp_path / "master.cf").read_text()
