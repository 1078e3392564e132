"""A ``mailhost serve`` set up like record_postfix_content.py's Postfix
instance (same host names, Maildirs, check tables), the recorded cases, and
the normalisation both sides go through before they are compared."""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import trustme

from tests.content import tables
from tests.support.maincf import serve_site
from tests.support.net import free_port
from tests.support.server import ROOT, ServerProcess

HERE = Path(__file__).parent

MAILBOXES = ", ".join(
    [f"{name}@example.com=example.com/{name}/" for name in tables.MAILBOXES]
    + ["s@client.test=client.test/s/"]
)


@cache
def recorded() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "postfix_content.json").read_text())
    return data


def write_site(directory: Path, **extra: object) -> None:
    """main.cf and the check tables in ``directory``."""
    for name, text in (
        ("header_checks", tables.HEADER_CHECKS),
        ("mime_header_checks", tables.MIME_HEADER_CHECKS),
        ("nested_header_checks", tables.NESTED_HEADER_CHECKS),
        ("body_checks", tables.BODY_CHECKS),
    ):
        (directory / name).write_text(text)
    (directory / "main.cf").write_text(
        serve_site(
            directory,
            f"inline:{{{MAILBOXES}}}",
            mynetworks="127.0.0.0/8",
            virtual_mailbox_domains="example.com, client.test",
            header_checks=f"regexp:{directory}/header_checks",
            mime_header_checks=f"regexp:{directory}/mime_header_checks",
            nested_header_checks=f"regexp:{directory}/nested_header_checks",
            body_checks=f"pcre:{directory}/body_checks",
            body_checks_size_limit=tables.BODY_CHECKS_SIZE_LIMIT,
            queue_run_delay="1s",
            mail_name="Postfix",
            **extra,
        )
    )


def send(port: int, rcpts: tuple[str, ...], text: str) -> str:
    """One message from <s@client.test>; the end-of-DATA reply."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.ehlo("client.test")
        assert smtp.docmd("MAIL", "FROM:<s@client.test>")[0] == 250
        for rcpt in rcpts:
            assert smtp.docmd("RCPT", f"TO:<{rcpt}>")[0] == 250
        smtp.docmd("DATA")
        smtp.send(text.replace("\r\n.", "\r\n..") + ".\r\n")
        code, reply = smtp.getreply()
    return f"{code} {reply.decode()}"


_LOG = re.compile(r"mailhost/(\w+)\[\d+\]: (.*)$")
_DELAYS = re.compile(r"delay=[\d.]+, delays=[\d./]+")
_DATE = re.compile(r"[A-Z][a-z]{2}, [ \d]\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\w+\)")


def lines_of(text: str, qids: set[str]) -> list[str]:
    """``daemon: text`` of every log line about one of ``qids``."""
    out = []
    for line in text.splitlines():
        found = _LOG.search(line)
        if found and any(found.group(2).startswith(f"{q}:") for q in qids):
            out.append(f"{found.group(1)}: {found.group(2)}")
    return out


def warnings_of(text: str) -> list[str]:
    return [
        found.group(2)
        for line in text.splitlines()
        if (found := _LOG.search(line)) and found.group(1) == "cleanup"
        and found.group(2).startswith("warning: ")
    ]  # fmt: skip


def normal(lines: list[str], qid: str) -> list[str]:
    """Queue ids, timings and dates out of log lines."""
    return [
        _DATE.sub("DATE", _DELAYS.sub("delay=D, delays=D", line.replace(qid, "QID")))
        for line in lines
    ]


_VARIABLE = ("Return-Path:", "Received:", "Date:", "X-Original-To:", "Delivered-To:")


def stable(message: str) -> str:
    """A delivered message without the headers that differ by host or time."""
    head, _, body = message.partition("\n\n")
    kept: list[str] = []
    skipping = False
    for line in head.split("\n"):
        if line[:1] in (" ", "\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.startswith(_VARIABLE)
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n\n" + body


def cli(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailhost", *args, "-c", str(directory)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def maildir_messages(directory: Path, seen: set[Path]) -> list[dict[str, str]]:
    base = directory / "vmail"
    out = []
    for path in sorted(base.glob("*/*/new/*")):
        if path not in seen:
            seen.add(path)
            mailbox = str(path.parent.parent.relative_to(base))
            out.append({"mailbox": mailbox, "text": path.read_text(errors="replace")})
    return out


def start_site(directory: Path, **extra: object) -> tuple[ServerProcess, int]:
    """``mailhost serve`` on write_site()'s configuration, with an smtpd on a
    free loopback port, qmgr and pickup; started."""
    write_site(directory, **extra)
    port = free_port()
    (directory / "master.cf").write_text(
        f"127.0.0.1:{port} inet n - n - - smtpd\n"
        "qmgr unix n - n 300 1 qmgr\n"
        "pickup unix n - n 60 1 pickup\n"
    )
    server = ServerProcess(directory, {"mx": port}, trustme.CA(), directory / "maillog")
    server.queue_kind = "cli"
    server.start()
    return server, port
