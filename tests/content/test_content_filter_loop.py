"""End to end, the way Postfix's FILTER_README sets up an after-queue
content filter: ``mailhost serve`` with main.cf ``content_filter =
scan:[127.0.0.1]:PORT`` and master.cf ``scan unix - - n - 10 smtp``; a filter on loopback (aiosmtpd) receives each
message with its envelope and sends it back to a second listener that has
``-o content_filter=``; from there it is delivered into the Maildir.  A
FILTER action of header_checks overrides content_filter for one message."""

from __future__ import annotations

import smtplib
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller

from tests.support.maincf import serve_site
from tests.support.net import free_port
from tests.support.server import ServerProcess, new_messages


class Reinjecting:
    """The content filter: adds a header and sends the message on."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[tuple[str, str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen.append((session.host_name, envelope.mail_from, list(envelope.rcpt_tos)))
        content = b"X-Filtered: yes\r\n" + envelope.original_content
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as client:
            client.sendmail(envelope.mail_from, envelope.rcpt_tos, content)
        return "250 2.0.0 Ok: filtered"


def test_content_filter_round_trip(tmp_path: Path) -> None:
    port, reinject, filter_port = free_port(), free_port(), free_port()
    (tmp_path / "header_checks").write_text(
        "/^Subject: skip the filter/ FILTER discard:skipped\n"
        "/^X-Filtered:/ WARN header_checks saw a reinjected copy\n"
    )
    (tmp_path / "main.cf").write_text(
        serve_site(
            tmp_path,
            "inline:{alice@example.com=example.com/alice/, bob@example.com=example.com/bob/}",
            mynetworks="127.0.0.0/8",
            content_filter=f"scan:[127.0.0.1]:{filter_port}",
            header_checks=f"regexp:{tmp_path}/header_checks",
        )
    )
    (tmp_path / "master.cf").write_text(
        f"127.0.0.1:{port} inet n - n - - smtpd\n"
        f"127.0.0.1:{reinject} inet n - n - - smtpd -o content_filter=\n"
        "  -o receive_override_options=no_header_body_checks\n"
        "qmgr unix n - n 300 1 qmgr\n"
        "scan unix - - n - 10 smtp\n"
        "  -o smtp_helo_name=filter.example.com\n"
    )
    handler = Reinjecting(reinject)
    controller = Controller(handler, hostname="127.0.0.1", port=filter_port)
    controller.start()
    server = ServerProcess(tmp_path, {"mx": port}, trustme.CA(), tmp_path / "maillog")
    server.queue_kind = "cli"
    server.start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.ehlo("client.test")
            client.sendmail(
                "s@client.test",
                ["alice@example.com", "bob@example.com"],
                b"Subject: through the filter\r\n\r\nhello\r\n",
            )
            client.sendmail(
                "s@client.test", ["alice@example.com"], b"Subject: skip the filter\r\n\r\nbye\r\n"
            )
        (alice,) = new_messages(tmp_path / "vmail" / "example.com" / "alice")
        (bob,) = new_messages(tmp_path / "vmail" / "example.com" / "bob")
        server.wait_log("status=sent (skipped)")
        server.wait_log("status=sent (250 2.0.0 Ok: filtered)", count=2)
    finally:
        assert server.stop() == 0
        controller.stop()
    log = server.log()
    # The scan transport's own -o override (its HELO name) was used.
    assert handler.seen == [
        ("filter.example.com", "s@client.test", ["alice@example.com", "bob@example.com"])
    ]
    for copy in (alice, bob):
        text = copy.read_text()
        assert "\nX-Filtered: yes\n" in text
        assert "Subject: through the filter\n" in text
    assert f"to=<bob@example.com>, relay=127.0.0.1[127.0.0.1]:{filter_port}, " in log
    assert "header_checks" not in log  # the reinjected copies were not inspected
    assert "to=<alice@example.com>, relay=none, " in log
