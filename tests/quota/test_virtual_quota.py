"""Quota in virtual(8) through the queue manager: the limit from
virtual_mailbox_limit_maps (capped by mailhost_quota_domain_maps), bounce
5.2.2 or defer 4.2.2, warnings once per crossing, outages defer 4.3.5, and
no maildirsize at all while quota is off."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from mailhost.delivery.maildir import parse_filename
from mailhost.qmgr.transport import Delivery, Job
from mailhost.qmgr.virtual import VirtualSettings, VirtualTransport
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.quota.maildirsize import FILENAME, Usage, parse_maildirsize, scan_usage
from mailhost.resolve.resolver import ResolverSettings
from mailhost.tables.registry import TableRegistry
from tests.qmgr.helpers import Site, captured_log

FULL = "dsn=5.2.2, status=bounced (Quota exceeded (mailbox for user is full))"
# One queued message as delivered to bob: delivery headers + CONTENT.
SIZE = len(
    b"Return-Path: <s@client.test>\nX-Original-To: bob@example.com\n"
    b"Delivered-To: bob@example.com\nReceived: from client.test\nSubject: hello\n\nbody line\n"
)


def give_to_owner(md: Path) -> None:
    """A maildir made by the test belongs to its recipient (uid 5000), as
    the directories virtual(8) writes into must (it writes as the recipient)."""
    if os.geteuid() == 0:
        for path in [md, *md.rglob("*")]:
            os.chown(path, 5000, 5000)


def quota_site(tmp_path: Path, limits: str, extra: str = "") -> Site:
    return Site(tmp_path, extra=f"virtual_mailbox_limit_maps = inline:{{{limits}}}\n" + extra)


def maildir(site: Site, name: str = "bob") -> Path:
    return site.base / "example.com" / name


def recorded(md: Path) -> Usage:
    parsed = parse_maildirsize((md / FILENAME).read_bytes())
    assert parsed is not None
    return parsed.usage


async def deliver(site: Site, *rcpts: str) -> tuple[str, str]:
    qid = await site.enqueue(*rcpts)
    with captured_log() as log:
        await site.manager().run_once()
    return qid, log.text()


async def test_message_crossing_the_limit_bounces_5_2_2(tmp_path: Path) -> None:
    site = quota_site(tmp_path, f"bob@example.com={2 * SIZE + 10}")
    for _ in range(2):
        _, log = await deliver(site, "bob@example.com")
        assert "status=sent (delivered to maildir)" in log
    qid, log = await deliver(site, "bob@example.com")
    assert re.search(rf"{qid}: to=<bob@example.com>, relay=virtual, .*{re.escape(FULL)}", log)
    assert site.queue_of(qid) is None
    assert len(site.messages("bob")) == 2
    md = maildir(site)
    assert (md / FILENAME).read_bytes().startswith(f"{2 * SIZE + 10}S\n".encode())
    assert recorded(md) == scan_usage(md)[0] == Usage(2 * SIZE, 2)


async def test_overquota_defers_4_2_2_when_configured(tmp_path: Path) -> None:
    site = quota_site(tmp_path, f"bob@example.com={SIZE}", "mailhost_quota_overquota_bounce = no\n")
    await deliver(site, "bob@example.com")
    qid, log = await deliver(site, "bob@example.com")
    assert "dsn=4.2.2, status=deferred (Quota exceeded (mailbox for user is full))" in log
    assert site.queue_of(qid) == "deferred"


async def test_fan_out_delivers_to_members_with_room(tmp_path: Path) -> None:
    site = quota_site(tmp_path, "bob@example.com=1, alice@example.com=0")
    qid, log = await deliver(site, "bob@example.com", "alice@example.com")
    assert f"{qid}: to=<bob@example.com>, relay=virtual" in log
    assert FULL in log
    assert "to=<alice@example.com>, relay=virtual" in log
    assert len(site.messages("alice")) == 1
    # Unlimited is still tracked, as Dovecot tracks bytes=0 (spec 6.3).
    assert (maildir(site, "alice") / FILENAME).read_bytes().startswith(b"0S\n")


async def test_warnings_once_per_crossing(tmp_path: Path) -> None:
    limit = 10 * SIZE
    site = quota_site(
        tmp_path, f"bob@example.com={limit}", "mailhost_quota_warning_thresholds = 30%, 60%\n"
    )
    md = maildir(site)

    def warnings() -> list[bytes]:
        found = [p.read_bytes() for p in site.messages("bob")]
        return [m for m in found if b"Subject: Mailbox quota warning" in m]

    await deliver(site, "bob@example.com")
    await deliver(site, "bob@example.com")
    assert warnings() == []
    await deliver(site, "bob@example.com")  # 3 messages: 30 % reached
    (first,) = warnings()
    assert b"Subject: Mailbox quota warning: 30% used\n" in first
    assert b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\n" in first
    await deliver(site, "bob@example.com")
    assert len(warnings()) == 1  # not again while above 30 %
    # The owner deletes mail (as an IMAP expunge: files gone, negative delta).
    for path in site.messages("bob"):
        size = parse_filename(path.name).size
        path.unlink()
        with (md / FILENAME).open("ab") as f:
            f.write(f"-{size} -1\n".encode())
    assert recorded(md) == Usage()
    for _ in range(3):
        await deliver(site, "bob@example.com")
    assert len(warnings()) == 1  # crossed 30 % again: one new warning
    assert recorded(md) == scan_usage(md)[0]


async def test_limit_map_outage_defers_4_3_5(tmp_path: Path) -> None:
    site = Site(tmp_path, extra=f"virtual_mailbox_limit_maps = hash:{tmp_path}/missing\n")
    qid, log = await deliver(site, "bob@example.com")
    assert "dsn=4.3.5, status=deferred (mail system configuration error)" in log
    assert site.queue_of(qid) == "deferred"


async def test_bad_limit_value_defers_with_a_warning(tmp_path: Path) -> None:
    site = quota_site(tmp_path, "bob@example.com=lots")
    _, log = await deliver(site, "bob@example.com")
    assert "recipient bob@example.com: bad quota value 'lots'" in log
    assert "dsn=4.3.5, status=deferred" in log


async def test_domain_cap_limits_unlimited_and_larger_quotas(tmp_path: Path) -> None:
    site = quota_site(
        tmp_path,
        "bob@example.com=0, alice@example.com=100000",
        f"mailhost_quota_domain_maps = inline:{{example.com={SIZE + 5}}}\n",
    )
    await deliver(site, "bob@example.com", "alice@example.com")
    _, log = await deliver(site, "bob@example.com", "alice@example.com")
    assert log.count(FULL) == 2
    for name in ("bob", "alice"):
        assert (maildir(site, name) / FILENAME).read_bytes().startswith(f"{SIZE + 5}S\n".encode())


async def test_no_entry_keeps_an_existing_header(tmp_path: Path) -> None:
    site = quota_site(tmp_path, "alice@example.com=0")
    md = maildir(site)
    for sub in ("tmp", "new", "cur"):
        (md / sub).mkdir(parents=True)
    (md / FILENAME).write_bytes(b"500S,1C\n0 0\n")
    give_to_owner(md)
    await deliver(site, "bob@example.com")
    _, log = await deliver(site, "bob@example.com")
    assert FULL in log  # the count limit of the header
    assert (md / FILENAME).read_bytes().startswith(b"500S,1C\n")


async def test_quota_off_writes_no_maildirsize_and_mbox_is_untouched(tmp_path: Path) -> None:
    (tmp_path / "off").mkdir()
    off = Site(tmp_path / "off")
    await deliver(off, "bob@example.com")
    assert len(off.messages("bob")) == 1
    assert not (maildir(off) / FILENAME).exists()
    on = quota_site(tmp_path, "frank@example.com=1")
    (on.base / "example.com").mkdir()  # virtual(8) creates no mbox parents
    _, log = await deliver(on, "frank@example.com")
    assert "status=sent (delivered to mailbox)" in log


async def test_concurrent_agents_never_overshoot(tmp_path: Path) -> None:
    """Two virtual transports (two queue managers) delivering 20 messages
    at once into one mailbox with room for 7: exactly 7 arrive."""
    site = quota_site(tmp_path, f"bob@example.com={7 * SIZE + SIZE // 2}")
    cfg = site.config()
    registry = TableRegistry()
    search = ResolverSettings.from_config(cfg, registry).search
    agents = [VirtualTransport(VirtualSettings.from_config(cfg, registry, search)) for _ in "ab"]
    rcpt = Recipient("bob@example.com", "bob@example.com")
    envelope = Envelope("s@client.test", (rcpt,), site.clock())
    message = b"Received: from client.test\nSubject: hello\n\nbody line\n"
    jobs = [Job(f"Q{n}", envelope, message, (Delivery(0, rcpt, "example.com"),)) for n in range(20)]
    outcomes = await asyncio.gather(*(agents[n % 2].deliver(job) for n, job in enumerate(jobs)))
    statuses = [o.status.dsn for (o,) in outcomes]
    assert statuses.count("2.0.0") == 7
    assert statuses.count("5.2.2") == 13
    md = maildir(site)
    assert recorded(md) == scan_usage(md)[0] == Usage(7 * SIZE, 7)
