"""End to end: ``mailhost serve`` applies cleanup's rewriting once, at end of DATA.

A canonical-mapped sender shows up in the delivered Maildir file (Return-Path
and From:), recipient_canonical_maps applies before virtual alias expansion,
the RCPT address stays ``orig_to``; a table failure during rewriting answers
``451 4.3.0 Error: queue file write error`` and queues nothing.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.maincf import alice_site
from tests.support.server import ServerProcess, new_messages, queued_as, serve_cli, smtp_session

REWRITE_CF = """\
sender_canonical_maps = inline:{{sender@client.test=Sender.Name@example.com}}
recipient_canonical_maps = inline:{{info@example.com=help@example.com}}
virtual_alias_maps = inline:{{help@example.com=alice@example.com}}
masquerade_domains = example.com
"""


def start(tmp_path: Path, extra: str) -> tuple[ServerProcess, int]:
    # The qmgr test's main.cf without its virtual_alias_maps line.
    (tmp_path / "main.cf").write_text(alice_site(tmp_path, virtual_alias_maps=None) + extra)
    return serve_cli(tmp_path)


def test_canonical_sender_in_delivered_maildir_file(tmp_path: Path) -> None:
    server, port = start(tmp_path, REWRITE_CF)
    try:
        with smtp_session(port) as client:
            assert client.rcpt("info@example.com")[0] == 250
            code, reply = client.data(
                b"From: Sender <sender@client.test>\r\nTo: info@example.com\r\n"
                b"Cc: Bob <bob@host.example.com>\r\nSubject: rewrite\r\n\r\nbody\r\n"
            )
            assert code == 250, reply
            qid = queued_as(reply)
        log = server.wait_log(f"{qid}: removed")
        (message,) = new_messages(tmp_path / "vmail" / "example.com" / "alice")
    finally:
        assert server.stop() == 0
    text = message.read_bytes()
    assert text.startswith(
        b"Return-Path: <Sender.Name@example.com>\n"
        b"X-Original-To: info@example.com\n"
        b"Delivered-To: alice@example.com\n"
    )
    assert b"\nFrom: Sender <Sender.Name@example.com>\n" in text
    assert b"\nTo: help@example.com\n" in text
    assert b"\nCc: Bob <bob@example.com>\n" in text  # masqueraded (header_recipient)
    assert f"{qid}: from=<Sender.Name@example.com>, size=" in log
    assert f"{qid}: to=<alice@example.com>, orig_to=<info@example.com>, relay=virtual" in log


def test_table_failure_while_rewriting_answers_451_and_queues_nothing(tmp_path: Path) -> None:
    # A table that cannot be opened fails every lookup temporarily (house rule 2).
    server, port = start(tmp_path, f"sender_canonical_maps = hash:{tmp_path}/missing\n")
    try:
        with smtp_session(port) as client:
            assert client.rcpt("alice@example.com")[0] == 250
            code, reply = client.data(b"Subject: x\r\n\r\nbody\r\n")
        log = server.wait_log("message not accepted, try again later")
    finally:
        assert server.stop() == 0
    assert (code, reply) == (451, b"4.3.0 Error: queue file write error")
    assert (
        "sender_canonical_maps map lookup problem for sender@client.test"
        " -- message not accepted, try again later"
    ) in log
    assert not [p for p in (tmp_path / "queue").rglob("*") if p.is_file()]
