"""``mailhost serve -c DIR`` end to end: the production resolver and queue
behind smtpd, driven over loopback."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from mailhost.queue import qfile
from tests.support.server import ServerProcess, free_port, write_config

ALIASES = """\
sales@example.com    bob@example.com, alice@example.com
loop1@example.com    loop2@example.com
loop2@example.com    loop1@example.com
bob@example.com      bob@example.com
alice@example.com    alice@example.com
"""


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("serve")
    (directory / "virtual").write_text(ALIASES)
    ports = {"mx": free_port(), "plainauth": free_port()}
    ca = trustme.CA()
    write_config(directory, ca, ports, f"virtual_alias_maps = texthash:{directory / 'virtual'}\n")
    proc = ServerProcess(directory, ports, ca, directory / "maillog", queue_kind="cli")
    proc.start()
    yield proc
    proc.stop()


def read(queue: Path, qid: str) -> qfile.QueueFile:
    with (queue / "incoming" / qid).open("rb") as f:
        return qfile.read(f)


def test_rcpt_replies_come_from_the_resolver(serve: ServerProcess) -> None:
    serve.mark()
    with smtplib.SMTP("127.0.0.1", serve.ports["mx"]) as client:
        client.ehlo("client.test")
        client.mail("tester@client.test")
        assert client.rcpt("bob@example.com") == (250, b"2.1.5 Ok")
        assert client.rcpt("nobody@example.com") == (
            550,
            b"5.1.1 <nobody@example.com>: Recipient address rejected: "
            b"User unknown in virtual mailbox table",
        )
        assert client.rcpt("x@other.test") == (454, b"4.7.1 <x@other.test>: Relay access denied")
        assert client.rcpt("postmaster") == (250, b"2.1.5 Ok")
    # QUIT with a queue file open: it is removed and the session ends cleanly
    # even though the client closes at once (a regression: the clean-up used to
    # be cancelled with the session task).
    serve.wait_log(
        "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=2/4 quit=1 commands=5/7"
    )
    assert not [p for p in (serve.queue / "incoming").iterdir() if "." in p.name]


def test_alias_fan_out_is_recorded_in_the_queue_file(serve: ServerProcess) -> None:
    with smtplib.SMTP("127.0.0.1", serve.ports["mx"]) as client:
        client.ehlo("client.test")
        client.mail("tester@client.test")
        assert client.rcpt("Sales@Example.com") == (250, b"2.1.5 Ok")
        code, text = client.data(b"Subject: fan-out\r\n\r\nhi\r\n")
        assert code == 250
        qid = text.decode().rsplit(" ", 1)[1]
    serve.wait_log(f"{qid}: from=<tester@client.test>")
    recipients = [(r.original, r.address) for r in read(serve.queue, qid).envelope.recipients]
    assert recipients == [
        ("Sales@Example.com", "bob@example.com"),
        ("Sales@Example.com", "alice@example.com"),
    ]


def test_alias_loop_is_refused_at_end_of_data(serve: ServerProcess) -> None:
    serve.mark()
    with smtplib.SMTP("127.0.0.1", serve.ports["mx"]) as client:
        client.ehlo("client.test")
        client.mail("tester@client.test")
        assert client.rcpt("loop1@example.com") == (250, b"2.1.5 Ok")
        assert client.data(b"Subject: loop\r\n\r\nhi\r\n") == (451, b"4.6.0 Alias expansion error")
    log = serve.wait_log("disconnect from")
    assert (
        "unreasonable virtual_alias_maps map nesting for loop1@example.com -- message not "
        "accepted, try again later"
    ) in log
    assert not [p for p in (serve.queue / "incoming").iterdir() if "." in p.name]
