"""End to end, issue 5's acceptance: a database provisioned with the
``mailhost`` CLI, the shipped ``examples/sqlite`` query files, a running
``mailhost serve`` with a queue manager — and each resolution case (mailbox,
case variant, ``+ext``, alias fan-out, catch-all, alias domain, an mbox path
without the trailing slash) lands in exactly the expected mailboxes, with
valid Maildir unique names and Postfix's delivery headers."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.maincf import LOOPBACK, main_cf
from tests.support.server import serve_cli, smtp_session

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sqlite"

#: Maildir unique names as mailhost writes them (maildir.html: time.Mpid...).
UNIQUE = re.compile(r"^\d+\.M\d+P\d+Q\d+R[0-9a-f]+\.[^/:,]+,S=\d+,W=\d+$")

PROVISION: list[tuple[str, ...]] = [
    ("db", "upgrade"),
    ("domain", "add", "example.com"),
    ("domain", "add", "example.net"),
    ("domain", "add", "alias.example"),
    ("mailbox", "add", "alice@example.com", "--password-stdin"),
    ("mailbox", "add", "bob@example.com", "--password-stdin"),
    ("mailbox", "add", "carol@example.com", "--password-stdin"),
    ("mailbox", "add", "dave@example.net", "--password-stdin"),
    ("mailbox", "add", "frank@example.com", "--password-stdin"),
    ("alias", "add", "team@example.com", "--to", "alice@example.com,bob@example.com"),
    ("alias", "add", "@example.com", "--to", "carol@example.com"),
    ("alias-domain", "add", "alias.example", "example.com"),
]

#: recipient → the mailboxes (paths under the base) it must land in.
CASES: list[tuple[str, list[str]]] = [
    ("alice@example.com", ["example.com/alice/"]),
    ("ALICE@Example.COM", ["example.com/alice/"]),
    ("alice+lists@example.com", ["example.com/alice/"]),
    ("team@example.com", ["example.com/alice/", "example.com/bob/"]),
    ("nobody@example.com", ["example.com/carol/"]),
    ("bob@alias.example", ["example.com/bob/"]),
    ("dave@example.net", ["example.net/dave/"]),
    ("frank@example.com", ["example.com/frank"]),
]


def mailhost(config: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "mailhost", *args, "-c", str(config)],
        input=b"secret\n",
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("e2e")
    base = root / "vmail"
    database = root / "mailhost.sqlite"
    for source in EXAMPLES.glob("*.cf"):
        if source.name == "main.cf":
            continue
        text = re.sub(r"(?m)^dbpath = .*$", f"dbpath = {database}", source.read_text())
        (root / source.name).write_text(text)
    example = EXAMPLES.joinpath("main.cf").read_text()
    example = re.sub(r"(?m)^virtual_mailbox_base = .*$", f"virtual_mailbox_base = {base}", example)
    (root / "main.cf").write_text(
        example
        + "\n"
        + main_cf(
            {"data_directory": root, "queue_directory": root / "queue"},
            LOOPBACK,
            mynetworks="192.0.2.0/24",
            smtpd_error_sleep_time=0,
            alias_maps="",
            local_recipient_maps="",
        )
    )
    for command in PROVISION:
        mailhost(root, *command)
    # frank's mailbox is an mbox file: PostfixAdmin admins edit the column.
    with sqlite3.connect(database) as db:
        db.execute("UPDATE mailbox SET maildir = 'example.com/frank' WHERE local_part = 'frank'")
    server, port = serve_cli(root)
    try:
        yield server, port, base
    finally:
        assert server.stop() == 0


def send(port: int, recipient: str, subject: str) -> str:
    with smtp_session(port) as client:
        code, reply = client.rcpt(recipient)
        assert code == 250, reply
        code, reply = client.data(f"Subject: {subject}\r\n\r\nbody of {subject}\r\n".encode())
        assert code == 250, reply
        return reply.decode().rsplit(" ", 1)[1]


def holding(base: Path, subject: str) -> dict[str, list[Path]]:
    """Every mailbox under ``base`` holding a message with ``subject``."""
    found: dict[str, list[Path]] = {}
    marker = f"\nSubject: {subject}\n".encode()
    for path in base.rglob("*"):
        if not path.is_file() or path.name == "maildirsize":
            continue
        if marker not in path.read_bytes():
            continue
        if path.parent.name == "new":
            found.setdefault(str(path.parent.parent.relative_to(base)) + "/", []).append(path)
        else:
            found.setdefault(str(path.relative_to(base)), []).append(path)
    return found


@pytest.mark.parametrize(("recipient", "mailboxes"), CASES)
def test_resolution_case_lands_in_exactly_the_expected_mailboxes(
    served, recipient: str, mailboxes: list[str]
) -> None:
    server, port, base = served
    subject = f"case {recipient}"
    qid = send(port, recipient, subject)
    server.wait_log(f"{qid}: removed")
    deadline = time.monotonic() + 10
    while (found := holding(base, subject)).keys() != set(mailboxes):
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    for mailbox, paths in found.items():
        assert len(paths) == 1, (mailbox, paths)
        if mailbox.endswith("/"):
            assert UNIQUE.match(paths[0].name), paths[0].name
            head = paths[0].read_bytes().split(b"\n", 3)
            assert head[0] == b"Return-Path: <sender@client.test>"
            assert head[1] == f"X-Original-To: {recipient}".encode()
            assert head[2].startswith(b"Delivered-To: ")
        else:
            # mbox: Postfix's "From sender date" separator line first.
            assert paths[0].read_bytes().startswith(b"From sender@client.test ")
