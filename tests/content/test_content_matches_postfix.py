"""header_checks, mime_header_checks, nested_header_checks and body_checks
of ``mailhost serve`` against Postfix 3.7.11 (record_postfix_content.py):
each case's message goes over SMTP on loopback (or through ``sendmail`` and
pickup), and the end-of-DATA reply, the maillog lines of its queue id, the
table warnings and the copies that reach a Maildir are compared with what
Postfix did.  A held message is also listed (``mailq`` shows ``!``),
released with ``postsuper -H`` and followed to its delivery."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.content import tables
from tests.content.site import (
    cli,
    lines_of,
    maildir_messages,
    normal,
    recorded,
    send,
    stable,
    start_site,
    warnings_of,
)
from tests.support.server import ServerProcess

SENDMAIL = Path(sys.executable).with_name("mailhost-sendmail")


class Site:
    def __init__(self, directory: Path, server: ServerProcess, port: int) -> None:
        self.directory = directory
        self.server = server
        self.port = port
        self.seen: set[Path] = set()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("content")
    server, port = start_site(directory)
    try:
        yield Site(directory, server, port)
    finally:
        assert server.stop() == 0


@pytest.fixture(scope="module")
def filtered_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The same site with main.cf content_filter set."""
    directory = tmp_path_factory.mktemp("content-filter")
    server, port = start_site(directory, content_filter=tables.CONTENT_FILTER)
    try:
        yield Site(directory, server, port)
    finally:
        assert server.stop() == 0


def settle(site: Site, qid: str, expected: int) -> str:
    """The log once ``expected`` lines about ``qid`` (and the notification
    it caused) are there, and a moment more."""
    deadline = time.monotonic() + 15
    while True:
        text = site.server.new_log()
        qids = {qid, *re.findall(rf"{qid}: sender non-delivery notification: (\w+)", text)}
        if len(lines_of(text, qids)) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    return site.server.new_log()


def compare_messages(site: Site, expected: list[dict[str, str]], qid: str, pqid: str) -> None:
    got = maildir_messages(site.directory, site.seen)
    assert [m["mailbox"] for m in got] == [m["mailbox"] for m in expected]
    for mine, theirs in zip(got, expected, strict=True):
        if theirs["mailbox"].startswith("client.test"):
            continue  # a notification: compared by tests/bounce
        assert stable(mine["text"]).replace(qid, "QID") == stable(theirs["text"]).replace(
            pqid, "QID"
        )


def qid_of(text: str, reply: str) -> str:
    found = re.search(r"queued as (\w+)", reply) or re.search(r"(\w+): client=", text)
    assert found is not None, text
    return found.group(1)


def held(site: Site, qid: str, case: dict[str, Any], pqid: str) -> None:
    """mailq's line, postsuper -H, and the delivery after it, as Postfix."""
    expected = case["held"]
    assert (site.directory / "queue" / "hold" / qid).exists()
    listing = cli(site.directory, "postqueue", "-p").stdout
    line = next(x for x in listing.splitlines() if x.startswith(qid))
    assert line.split()[0] == qid + "!"
    assert line.split()[0].replace(qid, "QID") == expected["postqueue_line"].split()[0].replace(
        pqid, "QID"
    )
    site.server.mark()
    release = cli(site.directory, "postsuper", "-H", qid)
    assert release.stderr.replace(qid, "QID") == expected["postsuper"].replace(pqid, "QID")
    cli(site.directory, "postqueue", "-f")
    text = settle(site, qid, len(expected["release_log"]) - 1)
    mine = [x for x in lines_of(text, {qid}) if not x.startswith("postsuper:")]
    theirs = [x for x in expected["release_log"] if not x.startswith("postsuper:")]
    assert normal(mine, qid) == normal(theirs, pqid)
    compare_messages(site, expected["messages"], qid, pqid)


@pytest.mark.parametrize("name", list(tables.CASES))
def test_smtp_case_matches_postfix(site: Site, name: str) -> None:
    smtp_case(site, name, recorded()["smtp"][name])


@pytest.mark.parametrize("name", tables.CONTENT_FILTER_CASES)
def test_content_filter_case_matches_postfix(filtered_site: Site, name: str) -> None:
    smtp_case(filtered_site, name, recorded()["content_filter"][name])


def smtp_case(site: Site, name: str, case: dict[str, Any]) -> None:
    text_in, rcpts = tables.CASES[name]
    site.server.mark()
    reply = send(site.port, rcpts, text_in)
    pqid = case["queue_id"]
    text = site.server.wait_log("client=")
    qid = qid_of(text, reply)
    assert reply.replace(qid, "QID") == case["reply"].replace(pqid, "QID")
    text = settle(site, qid, len(case["log"]))
    qids = {qid, *re.findall(rf"{qid}: sender non-delivery notification: (\w+)", text)}
    assert normal(lines_of(text, qids), qid) == normal(case["log"], pqid)
    assert warnings_of(text) == case["warnings"]
    compare_messages(site, case["messages"], qid, pqid)
    check_held(site, qid, case, pqid)


def check_held(site: Site, qid: str, case: dict[str, Any], pqid: str) -> None:
    """A message Postfix kept in hold is held here too; one it did not keep
    (discarded after a HOLD) is nowhere in the queue."""
    if case.get("held", {}).get("queue_name") == "hold":
        held(site, qid, case, pqid)
    else:
        assert not list((site.directory / "queue").glob(f"*/{qid}"))


@pytest.mark.parametrize("name", list(tables.LOCAL_CASES))
def test_local_case_matches_postfix(site: Site, name: str) -> None:
    if not SENDMAIL.exists():
        pytest.skip("mailhost-sendmail is not installed in this virtualenv (pip install -e .)")
    case = recorded()["local"][name]
    text_in, rcpts = tables.LOCAL_CASES[name]
    site.server.mark()
    done = subprocess.run(
        [str(SENDMAIL), "-f", "s@client.test", *rcpts],
        input=text_in.replace("\r\n", "\n").encode(),
        env={**os.environ, "MAILHOST_CONFIG": str(site.directory)},
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == case["sendmail_status"], done.stderr
    text = site.server.wait_log("uid=", timeout=20)
    found = re.search(r"(\w+): uid=", text)
    assert found is not None
    qid, pqid = found.group(1), case["queue_id"]
    text = settle(site, qid, len(case["log"]))
    notices = re.findall(rf"{qid}: sender non-delivery notification: (\w+)", text)
    mine = lines_of(text, {qid, *notices})
    theirs = case["log"]
    for notice in notices:
        # The notification's own lines: its id and message-id differ.
        mine = [x.replace(notice, "NOTICE") for x in mine]
    for notice in re.findall(
        rf"{pqid}: sender non-delivery notification: (\w+)", "\n".join(theirs)
    ):
        theirs = [x.replace(notice, "NOTICE") for x in theirs]
    assert in_order(normal(_no_notice_details(mine), qid)) == in_order(
        normal(_no_notice_details(theirs), pqid)
    )
    compare_messages(site, case["messages"], qid, pqid)
    check_held(site, qid, case, pqid)


def _no_notice_details(lines: list[str]) -> list[str]:
    """The notification's message-id and size depend on the host; keep the shape."""
    out = []
    for line in lines:
        shaped = re.sub(r"NOTICE: message-id=<[^>]*>", "NOTICE: message-id=<ID>", line)
        out.append(re.sub(r"size=\d+", "size=N", shaped) if "NOTICE" in shaped else shaped)
    return out


def in_order(lines: list[str]) -> tuple[list[str], list[str]]:
    """The message's own lines in order; the notification's (written by
    bounce(8) and qmgr(8), two processes in Postfix) as a set."""
    return [x for x in lines if "NOTICE" not in x], sorted(x for x in lines if "NOTICE" in x)
