"""Maildir delivery: names, layout, durability order, hard-linked copies,
errors (spec 4.2, 4.3, 5)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.delivery import maildir as md
from mailhost.delivery import maildir_names
from mailhost.delivery.groupcommit import deliver_maildir, deliver_maildirs
from mailhost.delivery.maildir import (
    MaildirTarget,
    UniqueNames,
    deliver_maildirs_sync,
    escape_hostname,
    info_suffix,
    parse_filename,
    sized_name,
    vsize,
)

MSG = b"Received: from client.test\nSubject: hi\n\nhello\n"
NAME_RE = r"^\d+\.M\d+P\d+Q\d+R[0-9a-f]{16}\.[^/:]+,S=\d+,W=\d+$"
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="changing file owners needs root")


def files(maildir: Path, sub: str = "new") -> list[Path]:
    return sorted((maildir / sub).iterdir())


def test_hostname_escaping():
    assert escape_hostname("mx/1:2") == "mx\\0571\\0722"
    assert UniqueNames("mx/1:2").next().endswith(".mx\\0571\\0722")


def test_unique_names_shape_and_no_repeats():
    names = UniqueNames("host")
    made = [names.next() for _ in range(2000)]
    assert len(set(made)) == len(made)
    assert all(sized_name(n, 1, 2).count(",S=1,W=2") == 1 for n in made[:5])
    import re

    assert re.match(NAME_RE, sized_name(made[0], 36, 41))


def test_vsize_counts_bare_lf_as_crlf():
    # Observed Dovecot file: 5 lines, 36 bytes, W=41.
    content = b"Subject: a\nFrom: b@c.d\n\nline one\nxy\n"
    assert len(content) == 36
    assert content.count(b"\n") == 5
    assert vsize(content) == 41
    assert vsize(b"a\r\nb\n") == 6


@pytest.mark.parametrize(
    ("name", "size", "vsz", "flags"),
    [
        ("1.M1P1.h,S=36,W=41:2,S", 36, 41, "S"),
        ("1.M1P1.h,S=abc", None, None, ""),
        ("1.M1P1.h,S=36x", None, None, ""),
        ("1.M1P1.h,W=41,S=36", 36, 41, ""),
        ("1.M1P1.h:2,FRS,xyz", None, None, "FRS"),
        ("1.M1P1.h", None, None, ""),
        ("1.M1P1.h,S=5:1,S", 5, None, ""),
    ],
)
def test_parse_filename(name, size, vsz, flags):
    info = parse_filename(name)
    assert (info.size, info.vsize, info.flags) == (size, vsz, flags)


def test_flags_in_ascii_order():
    assert info_suffix("SRF") == ":2,FRS"
    assert info_suffix("TSDa") == ":2,DSTa"
    assert info_suffix("") == ":2,"


@given(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=10**12),
    st.text(alphabet="DFPRSTabc", max_size=8),
)
def test_filename_round_trip(size, virtual, flags):
    name = sized_name(UniqueNames("h").next(), size, virtual) + info_suffix(flags)
    info = parse_filename(name)
    assert (info.size, info.vsize) == (size, virtual)
    assert set(info.flags) == {f for f in flags if f in "DFPRSTabc"}


@given(st.text(max_size=60))
def test_parse_filename_never_raises(name):
    parse_filename(name)


async def test_delivery_creates_maildir_and_writes_headers(tmp_path):
    box = tmp_path / "vmail/example.com/bob"
    target = MaildirTarget(box, "bob@example.com", "Bob@Example.com")
    result = await deliver_maildir(MSG, "sender@client.test", target)
    assert result.status.delivered
    assert result.status.text == "delivered to maildir"
    assert result.status.dsn == "2.0.0"
    for sub in ("tmp", "new", "cur"):
        assert stat.S_IMODE((box / sub).stat().st_mode) == 0o700
    assert stat.S_IMODE(box.stat().st_mode) == 0o700
    assert files(box, "tmp") == []
    assert files(box, "cur") == []
    (path,) = files(box)
    assert path == result.path
    content = path.read_bytes()
    assert content == (
        b"Return-Path: <sender@client.test>\n"
        b"X-Original-To: Bob@Example.com\n"
        b"Delivered-To: bob@example.com\n" + MSG
    )
    info = parse_filename(path.name)
    assert info.size == len(content) == path.stat().st_size
    assert info.vsize == vsize(content)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_crlf_input_is_stored_with_lf(tmp_path):
    target = MaildirTarget(tmp_path / "m", "a@b.c")
    result = await deliver_maildir(b"Subject: x\r\n\r\nbody\r\n", "", target)
    assert result.path is not None
    assert result.path.read_bytes().endswith(b"Subject: x\n\nbody\n")


async def test_two_deliveries_same_instant_get_different_names(tmp_path, monkeypatch):
    monkeypatch.setattr(maildir_names.time, "time_ns", lambda: 1_700_000_000_123_456_000)
    target = MaildirTarget(tmp_path / "m", "a@b.c")
    await deliver_maildirs(MSG, "", [target, target])
    assert len(files(tmp_path / "m")) == 2


class FixedNames(UniqueNames):
    def __init__(self, *names: str) -> None:
        super().__init__("h")
        self.seq = iter(names)

    def next(self) -> str:
        return next(self.seq)


@pytest.mark.parametrize(
    ("taken_in", "names", "delivered_as"),
    [
        # A taken tmp/ name is never overwritten; new/ then gets the name
        # the file has in tmp/ (the usual Maildir rename).
        ("tmp", ("1.taken.h", "1.taken.h", "2.free.h", "3.free.h"), "2.free.h"),
        # A taken new/ name gets a fresh one.
        ("new", ("1.same.h", "2.fresh.h"), "2.fresh.h"),
    ],
)
def test_existing_names_are_never_overwritten(tmp_path, taken_in, names, delivered_as):
    box = tmp_path / "m"
    md.ensure_maildir(box)
    content = md.prepared_content(MSG, "", MaildirTarget(box, "a@b.c"), mode="postfix", batch=1)
    taken = box / taken_in / sized_name(names[0], len(content), vsize(content))
    taken.write_bytes(b"someone else's")
    target = MaildirTarget(box, "a@b.c")
    (res,) = deliver_maildirs_sync(MSG, "", [target], names=FixedNames(*names))
    assert res.status.delivered
    assert taken.read_bytes() == b"someone else's"
    assert res.path is not None
    assert res.path.name.startswith(delivered_as)
    assert list((box / "tmp").iterdir()) == ([taken] if taken_in == "tmp" else [])


async def test_many_mailboxes_one_file_hard_linked(tmp_path):
    targets = [MaildirTarget(tmp_path / f"u{i}", f"u{i}@example.com") for i in range(4)]
    results = await deliver_maildirs(MSG, "s@x.test", targets, header_mode="shared")
    inodes = {r.path.stat().st_ino for r in results if r.path}
    assert len(inodes) == 1
    assert results[0].path is not None
    assert results[0].path.stat().st_nlink == 4
    content = results[0].path.read_bytes()
    # Several recipients: no per-recipient headers (Dovecot LMTP's choice).
    assert content == b"Return-Path: <s@x.test>\n" + MSG
    assert all(files(t.maildir, "tmp") == [] for t in targets)


async def test_shared_mode_with_one_recipient_keeps_postfix_headers(tmp_path):
    target = MaildirTarget(tmp_path / "m", "a@b.c", "a@b.c")
    (res,) = await deliver_maildirs(MSG, "", [target], header_mode="shared")
    assert res.path is not None
    assert b"Delivered-To: a@b.c\n" in res.path.read_bytes()


async def test_postfix_mode_writes_each_recipient_its_own_headers(tmp_path):
    targets = [MaildirTarget(tmp_path / f"u{i}", f"u{i}@example.com") for i in range(2)]
    results = await deliver_maildirs(MSG, "", targets)
    assert results[0].path
    assert results[1].path
    assert results[0].path.stat().st_ino != results[1].path.stat().st_ino
    assert b"Delivered-To: u1@example.com\n" in results[1].path.read_bytes()


@AS_ROOT
async def test_created_dirs_and_files_belong_to_the_recipient(tmp_path):
    base = tmp_path / "vmail"
    base.mkdir()
    target = MaildirTarget(base / "example.com/bob", "bob@example.com", uid=65534, gid=65534)
    res = await deliver_maildir(MSG, "", target)
    assert res.path is not None
    for p in (base / "example.com", target.maildir, target.maildir / "new", res.path):
        assert (p.stat().st_uid, p.stat().st_gid) == (65534, 65534)
    assert base.stat().st_uid == 0  # the base itself is left alone


@AS_ROOT
async def test_different_owners_never_share_a_file(tmp_path):
    a = MaildirTarget(tmp_path / "a", "a@x.test", uid=65534, gid=65534)
    b = MaildirTarget(tmp_path / "b", "b@x.test", uid=0, gid=0)
    ra, rb = await deliver_maildirs(MSG, "", [a, b], header_mode="shared")
    assert ra.path
    assert rb.path
    assert ra.path.stat().st_ino != rb.path.stat().st_ino
    assert rb.path.stat().st_uid == 0
    assert ra.path.stat().st_uid == 65534


async def test_delivered_to_loop_bounces_5_4_6(tmp_path):
    looped = b"Delivered-To: bob@example.com\n" + MSG
    target = MaildirTarget(tmp_path / "m", "Bob@Example.com")
    res = await deliver_maildir(looped, "", target)
    assert (res.status.dsn, res.status.text) == (
        "5.4.6",
        "mail forwarding loop for Bob@Example.com",
    )
    assert res.status.bounced
    assert res.path is None
    assert not (tmp_path / "m").exists()


async def test_file_size_limit_bounces_file_too_large(tmp_path):
    target = MaildirTarget(tmp_path / "m", "a@b.c")
    res = await deliver_maildir(MSG, "", target, file_size_limit=50)
    assert res.status.dsn == "5.2.2"
    assert res.status.text == "maildir delivery failed: error writing message: File too large"
    assert files(tmp_path / "m") == []
    assert files(tmp_path / "m", "tmp") == []


async def test_unwritable_maildir_defers(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = await deliver_maildir(MSG, "", MaildirTarget(blocker / "m", "a@b.c"))
    assert res.status.dsn == "4.2.0"
    assert res.status.deferred
    assert res.status.text.startswith("maildir delivery failed: create maildir file ")


def test_message_survives_a_kill_after_success(tmp_path):
    # The delivering process dies right after reporting success: the message
    # is complete in new/ and nothing is left in tmp/.
    import subprocess
    import sys

    box = tmp_path / "m"
    code = (
        "import os,sys\n"
        "from pathlib import Path\n"
        "from mailhost.delivery.maildir import MaildirTarget, deliver_maildirs_sync\n"
        f"r = deliver_maildirs_sync({MSG!r} * 2000, '', [MaildirTarget(Path({str(box)!r}), 'a@b.c')])\n"
        "sys.stdout.write(r[0].status.dsn); sys.stdout.flush(); os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert proc.returncode == -9
    assert proc.stdout == b"2.0.0"
    (path,) = files(box)
    assert path.read_bytes().endswith(MSG * 2000)
    assert parse_filename(path.name).size == path.stat().st_size
    assert files(box, "tmp") == []


def test_a_large_fan_out_is_committed_in_rounds_without_leaking_files(tmp_path):
    targets = [MaildirTarget(tmp_path / f"u{i}", f"u{i}@example.com") for i in range(150)]
    before = len(os.listdir("/proc/self/fd"))
    results = deliver_maildirs_sync(MSG, "s@x.test", targets)
    assert all(r.status.delivered for r in results)
    assert len(os.listdir("/proc/self/fd")) == before
    for i, result in enumerate(results):
        assert result.path is not None
        assert result.path.parent == tmp_path / f"u{i}" / "new"
        assert f"Delivered-To: u{i}@example.com\n".encode() in result.path.read_bytes()
        assert list((tmp_path / f"u{i}" / "tmp").iterdir()) == []


def test_one_broken_maildir_in_a_fan_out_fails_alone(tmp_path):
    (tmp_path / "broken").write_text("a file where a maildir should be")
    names = ["a", "broken", "b"]
    targets = [MaildirTarget(tmp_path / n, f"{n}@example.com") for n in names]
    results = deliver_maildirs_sync(MSG, "s@x.test", targets)
    assert [r.status.delivered for r in results] == [True, False, True]
    assert results[1].status.dsn.startswith("4.")
