"""virtual(8) through the queue manager: the spec 4.4 cases (owner maps,
extensions, loops, a broken virtual_mailbox_base) with the warning and status
texts of Postfix 3.7.11 (spec 4.1; also present verbatim in its virtual
binary)."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mailhost.qmgr.virtual import atol
from mailhost.queue.qfile import Envelope, Recipient
from tests.qmgr.helpers import Site, captured_log

CONFIG_ERROR = "dsn=4.3.5, status=deferred (mail system configuration error)"


@given(st.integers(min_value=-(10**12), max_value=10**12), st.text(max_size=5))
def test_atol_reads_the_leading_number(number: int, tail: str) -> None:
    if tail[:1].isdigit():
        tail = "x" + tail
    assert atol(f"  {number}{tail}") == number


@given(st.text(alphabet="abcxyz +-_:\t", max_size=10))
def test_atol_without_digits_is_zero(text: str) -> None:
    assert atol(text) == 0


async def test_uid_below_virtual_minimum_uid_defers(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="virtual_uid_maps = static:50\n")
    qid = await site.enqueue("bob@example.com")
    with captured_log() as log:
        await site.manager().run_once()
    assert "warning: recipient bob@example.com: bad uid 50 in virtual_uid_maps" in log.text()
    assert CONFIG_ERROR in log.text()
    assert site.queue_of(qid) == "deferred"


async def test_gid_zero_defers(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="virtual_gid_maps = static:0\n")
    await site.enqueue("bob@example.com")
    with captured_log() as log:
        await site.manager().run_once()
    assert "warning: recipient bob@example.com: bad gid 0 in virtual_gid_maps" in log.text()
    assert CONFIG_ERROR in log.text()
    assert site.messages("bob") == []


async def test_extension_looked_up_folded_delivered_to_as_recorded(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="recipient_delimiter = +\n")
    qid = await site.enqueue("Bob+Tag@Example.COM")
    with captured_log() as log:
        await site.manager().run_once()
    assert f"{qid}: to=<Bob+Tag@Example.COM>, relay=virtual" in log.text()
    (message,) = site.messages("bob")
    assert message.read_bytes().startswith(
        b"Return-Path: <s@client.test>\n"
        b"X-Original-To: Bob+Tag@Example.COM\n"
        b"Delivered-To: Bob+Tag@Example.COM\n"
    )


async def test_delivered_to_loop_bounces(tmp_path: Path) -> None:
    site = Site(tmp_path)
    store = site.store()
    envelope = Envelope("s@client.test", (Recipient("bob@example.com"),), site.clock())
    qid = await store.enqueue(envelope, [b"Delivered-To: bob@example.com", b"", b"again"])
    with captured_log() as log:
        await site.manager().run_once()
    assert "dsn=5.4.6, status=bounced (mail forwarding loop for bob@example.com)" in log.text()
    assert site.messages("bob") == []
    assert site.queue_of(qid) is None


async def test_relative_mailbox_base_is_fatal_and_mail_stays_queued(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="virtual_mailbox_base = vmail\n")
    qid = await site.enqueue("bob@example.com")
    with captured_log() as log:
        await site.manager().run_once()
    assert "fatal: do not specify relative pathname: virtual_mailbox_base = vmail" in log.text()
    assert re.search(
        r"relay=none, .*dsn=4\.3\.0, status=deferred \(unknown mail transport error\)", log.text()
    )
    assert site.queue_of(qid) == "deferred"


async def test_fan_out_default_is_one_file_per_recipient_with_its_headers(
    tmp_path: Path,
) -> None:
    site = Site(tmp_path)
    await site.enqueue("alice@example.com", "bob@example.com")
    await site.manager().run_once()
    (alice,), (bob,) = site.messages("alice"), site.messages("bob")
    assert alice.stat().st_ino != bob.stat().st_ino
    assert b"\nDelivered-To: alice@example.com\n" in alice.read_bytes()
    assert b"\nDelivered-To: bob@example.com\n" in bob.read_bytes()


async def test_shared_copies_write_a_fan_out_once_and_hard_link_it(tmp_path: Path) -> None:
    """mailhost_virtual_shared_copies = yes: one message to several Maildirs
    of one owner on one filesystem is one file, hard-linked into each new/,
    with Return-Path only (no per-recipient headers); an mbox recipient of
    the same message still gets its own copy."""
    site = Site(tmp_path, extra="mailhost_virtual_shared_copies = yes\n")
    qid = await site.enqueue("alice@example.com", "bob@example.com", "frank@example.com")
    with captured_log() as log:
        await site.manager().run_once()
    assert log.text().count("status=sent") == 3
    (alice,), (bob,) = site.messages("alice"), site.messages("bob")
    assert alice.stat().st_ino == bob.stat().st_ino
    assert alice.stat().st_nlink == 2
    assert alice.read_bytes().startswith(b"Return-Path: <s@client.test>\nReceived: ")
    assert b"Delivered-To:" not in alice.read_bytes()
    frank = (site.base / "example.com" / "frank").read_bytes()
    assert frank.startswith(b"From s@client.test ")
    assert b"\nDelivered-To: frank@example.com\n" in frank
    assert site.queue_of(qid) is None
