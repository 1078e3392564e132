"""ETRN against ``mailhost serve``: a fast flush domain's deferred mail is
attempted again at once; without a queue manager the reply is Postfix's for
an unreachable flush service.  (The replies to every other ETRN case are
compared with Postfix in tests/smtpd_check/test_postfix_restrictions.py.)"""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

import trustme
from hypothesis import given
from hypothesis import strategies as st

from mailhost.hostnames import valid_hostname
from mailhost.reply import Reply
from mailhost.smtpd.etrn import BAD_PARAMETER, SYNTAX, etrn_site
from tests.qmgr.helpers import Site
from tests.support.server import ServerProcess, free_port

# A mailbox path outside virtual_mailbox_base: every attempt defers.
DEFERS = "evil@example.com"


def serve(directory: Path, master_cf: str) -> tuple[ServerProcess, int]:
    port = free_port()
    (directory / "master.cf").write_text(f"127.0.0.1:{port} inet n - n - - smtpd\n{master_cf}")
    server = ServerProcess(directory, {"mx": port}, trustme.CA(), directory / "maillog")
    server.queue_kind = "cli"
    server.start()
    return server, port


def etrn(port: int, site: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo("client.test")
        return client.docmd("ETRN", site)


def test_etrn_flushes_the_deferred_mail_of_a_fast_flush_domain(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="fast_flush_domains = example.com\n")
    qid = asyncio.run(site.enqueue(DEFERS))
    server, port = serve(tmp_path, "qmgr unix n - n 300 1 qmgr\n")
    try:
        server.wait_log(f"{qid}: to=<{DEFERS}>", count=1)
        assert etrn(port, "example.com") == (250, b"Queuing started")
        server.wait_log(f"{qid}: to=<{DEFERS}>", count=2)
        assert etrn(port, "elsewhere.test") == (459, b"<elsewhere.test>: service unavailable")
        assert "warning: reject: ETRN elsewhere.test... from localhost[127.0.0.1]" in server.log()
    finally:
        assert server.stop() == 0


def test_etrn_without_a_queue_manager_matches_postfix(tmp_path: Path) -> None:
    Site(tmp_path, extra="fast_flush_domains = example.com\n")
    server, port = serve(tmp_path, "")
    try:
        assert etrn(port, "example.com") == (458, b"Unable to queue messages")
        server.wait_log("warning: unable to talk to fast flush service")
    finally:
        assert server.stop() == 0


@given(st.text(max_size=40))
def test_any_etrn_argument_is_a_site_or_a_syntax_reply(arg: str) -> None:
    got = etrn_site(arg)
    if isinstance(got, Reply):
        assert got in (SYNTAX, BAD_PARAMETER)
        return
    word = arg.split(maxsplit=1)[0]
    assert got in (word, word[1:])
    assert valid_hostname(got) or (got.startswith("[") and got.endswith("]"))


def test_etrn_argument_forms() -> None:
    assert etrn_site("@example.com") == "example.com"
    assert etrn_site("#example.com") == "example.com"
    assert etrn_site("[192.0.2.1]") == "[192.0.2.1]"
    assert etrn_site("[IPv6:2001:db8::1]") == "[IPv6:2001:db8::1]"
    assert etrn_site("") is SYNTAX
    assert etrn_site("a b") is SYNTAX
    assert etrn_site("1.2.3.4") is BAD_PARAMETER
    assert etrn_site("[300.1.1.1]") is BAD_PARAMETER
