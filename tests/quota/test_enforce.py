"""Quota at delivery: check + write + account under the per-maildir lock,
never overshooting with concurrent deliveries (in one process or several),
warnings once per crossing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from mailhost.delivery.maildir import MaildirTarget, parse_filename
from mailhost.quota.enforce import MailboxLocks, QuotaTarget, current_quota, deliver_with_quota
from mailhost.quota.maildirsize import FILENAME, QuotaLimits, Usage, parse_maildirsize, scan_usage
from mailhost.quota.policy import QuotaPolicy

MSG = b"Subject: hello\n\n" + b"x" * 63 + b"\n"  # 80 bytes; 126 with the headers for bob


def target(tmp_path: Path, name: str = "bob", limit: int = 0) -> QuotaTarget:
    md = tmp_path / "vmail" / name
    return QuotaTarget(MaildirTarget(md, f"{name}@example.com"), QuotaLimits(limit))


def new_files(md: Path) -> list[Path]:
    return sorted((md / "new").iterdir()) if (md / "new").is_dir() else []


def recorded(md: Path) -> Usage:
    parsed = parse_maildirsize((md / FILENAME).read_bytes())
    assert parsed is not None
    return parsed.usage


async def test_first_delivery_matches_dovecots_file(tmp_path):
    t = target(tmp_path, limit=1073741824)
    (res,) = await deliver_with_quota(MSG, "s@x.test", [t], QuotaPolicy())
    assert res.status.delivered
    assert res.path is not None
    size = parse_filename(res.path.name).size
    assert (t.target.maildir / FILENAME).read_bytes() == f"1073741824S\n0 0\n{size} 1\n".encode()


async def test_full_mailbox_bounces_or_defers(tmp_path):
    t = target(tmp_path, limit=300)
    ok1, ok2, full = [(await deliver_with_quota(MSG, "", [t], QuotaPolicy()))[0] for _ in range(3)]
    assert ok1.status.delivered
    assert ok2.status.delivered
    assert (full.status.dsn, full.status.text) == (
        "5.2.2",
        "Quota exceeded (mailbox for user is full)",
    )
    assert len(new_files(t.target.maildir)) == 2
    assert list((t.target.maildir / "tmp").iterdir()) == []
    (deferred,) = await deliver_with_quota(MSG, "", [t], QuotaPolicy(bounce=False))
    assert deferred.status.dsn == "4.2.2"
    assert recorded(t.target.maildir) == scan_usage(t.target.maildir)[0]


async def test_space_freed_elsewhere_is_seen(tmp_path):
    t = target(tmp_path, limit=300)
    for _ in range(3):
        await deliver_with_quota(MSG, "", [t], QuotaPolicy())
    first = new_files(t.target.maildir)[0]
    size = parse_filename(first.name).size
    # What an IMAP expunge does: remove the file, append a negative delta.
    first.unlink()
    with open(t.target.maildir / FILENAME, "ab") as f:
        f.write(f"-{size} -1\n".encode())
    (res,) = await deliver_with_quota(MSG, "", [t], QuotaPolicy())
    assert res.status.delivered


async def test_concurrent_deliveries_never_overshoot(tmp_path):
    t = target(tmp_path, limit=10 * 129 + 50)
    results = await asyncio.gather(
        *(deliver_with_quota(MSG, "", [t], QuotaPolicy(), locks=MailboxLocks()) for _ in range(30))
    )
    accepted = [r for (r,) in results if r.status.delivered]
    assert len(accepted) == 10
    usage = scan_usage(t.target.maildir)[0]
    assert usage.bytes <= t.limits.bytes
    assert recorded(t.target.maildir) == usage


def test_concurrent_processes_never_overshoot(tmp_path):
    md = tmp_path / "vmail" / "bob"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mailhost.delivery.maildir import MaildirTarget, deliver_maildirs_sync\n"
        "from mailhost.quota.enforce import QuotaGuard\n"
        "from mailhost.quota.maildirsize import QuotaLimits\n"
        "from mailhost.quota.policy import QuotaPolicy\n"
        f"md = Path({str(md)!r})\n"
        f"guard = QuotaGuard({{md: QuotaLimits({12 * 129 + 10})}}, QuotaPolicy())\n"
        "ok = 0\n"
        "for _ in range(10):\n"
        f"    (r,) = deliver_maildirs_sync({MSG!r}, '', [MaildirTarget(md, 'bob@example.com')], guard=guard)\n"
        "    ok += r.status.delivered\n"
        "print(ok)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(int(o) for o in outs) == 12
    assert len(new_files(md)) == 12
    assert recorded(md) == scan_usage(md)[0] == Usage(12 * 126, 12)


async def test_warning_delivered_once_per_crossing(tmp_path):
    t = target(tmp_path, limit=1000)
    policy = QuotaPolicy(warn_percents=(50, 80))
    for _ in range(4):  # 516 bytes: crosses 50 %
        await deliver_with_quota(MSG, "", [t], policy, hostname="mx.example.com")
    warnings = [p for p in new_files(t.target.maildir) if b"quota warning" in p.read_bytes()]
    assert len(warnings) == 1
    text = warnings[0].read_bytes()
    assert text.startswith(b"Return-Path: <>\nDelivered-To: bob@example.com\n")
    assert b"Subject: Mailbox quota warning: 50% used\n" in text
    assert b"Auto-Submitted: auto-generated\n" in text
    # The warning is counted like any delivery.
    assert recorded(t.target.maildir) == scan_usage(t.target.maildir)[0]


async def test_batch_hard_links_and_checks_each_mailbox(tmp_path):
    roomy = target(tmp_path, "alice", limit=10**6)
    full = target(tmp_path, "bob", limit=100)
    other = target(tmp_path, "carol", limit=0)
    ra, rb, rc = await deliver_with_quota(
        MSG, "s@x.test", [roomy, full, other], QuotaPolicy(), header_mode="shared"
    )
    assert ra.status.delivered
    assert rc.status.delivered
    assert rb.status.dsn == "5.2.2"
    assert ra.path is not None
    assert rc.path is not None
    assert ra.path.stat().st_ino == rc.path.stat().st_ino
    assert new_files(full.target.maildir) == []
    assert recorded(roomy.target.maildir).count == 1
    assert recorded(full.target.maildir) == Usage(0, 0)


async def test_current_quota(tmp_path):
    t = target(tmp_path, limit=5000)
    state = await current_quota(t.target.maildir, t.limits)
    assert state.usage == Usage()
    await deliver_with_quota(MSG, "", [t], QuotaPolicy())
    state = await current_quota(t.target.maildir, t.limits)
    assert state.usage.count == 1
    assert state.limits == QuotaLimits(5000)


async def test_locks_are_dropped_after_use(tmp_path):
    locks = MailboxLocks()
    t = target(tmp_path, limit=0)
    await asyncio.gather(
        *(deliver_with_quota(MSG, "", [t], QuotaPolicy(), locks=locks) for _ in range(5))
    )
    assert len(locks) == 0
