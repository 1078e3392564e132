"""mbox delivery as virtual(8) does it: From_ line, >From quoting, trailing
blank line, fcntl + dotlock locking, truncate back on error (spec 4.2)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.delivery.mbox import (
    MboxTarget,
    deliver_mbox,
    deliver_mbox_sync,
    from_line,
    lock_styles,
    quote_from,
)

MSG = b"Subject: hi\n\nFrom me\nnot From here\nFrom\n"


def test_from_line_is_asctime_with_two_spaces(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert from_line("a@b.c", 1700000000) == b"From a@b.c  Tue Nov 14 22:13:20 2023\n"
        # asctime pads the day of month with a space.
        assert from_line("", 1699000000) == b"From MAILER-DAEMON  Fri Nov  3 08:26:40 2023\n"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_from_quoting_only_at_line_start():
    assert quote_from(b"From me\nnot From here\nFrom\n") == b">From me\nnot From here\nFrom\n"
    assert quote_from(b">From x\n") == b">From x\n"
    assert quote_from(b"a\r\nFrom b") == b"a\n>From b\n"


@given(st.binary(max_size=300))
def test_quoted_body_has_no_from_lines(data):
    out = quote_from(data)
    assert not any(line.startswith(b"From ") for line in out.split(b"\n"))
    assert out == b"" or out.endswith(b"\n")


def test_lock_styles():
    assert lock_styles("fcntl, dotlock") == ("fcntl", "dotlock")
    assert lock_styles("flock") == ("flock",)
    with pytest.raises(ValueError, match="invalid virtual_mailbox_lock value: bogus"):
        lock_styles("fcntl bogus")


async def test_append_two_messages(tmp_path):
    box = tmp_path / "frank"
    target = MboxTarget(box, "frank@example.com", "frank@example.com", uid=os.geteuid())
    assert (await deliver_mbox(MSG, "s@x.test", target)).text == "delivered to mailbox"
    status = await deliver_mbox(b"Subject: two\n\nsecond", "", target)
    assert status.dsn == "2.0.0"
    data = box.read_bytes()
    first, second = data.split(b"\n\nFrom MAILER-DAEMON  ")
    assert first.startswith(b"From s@x.test  ")
    assert first.split(b"\n", 1)[1] == (
        b"Return-Path: <s@x.test>\n"
        b"X-Original-To: frank@example.com\n"
        b"Delivered-To: frank@example.com\n"
        b"Subject: hi\n\n>From me\nnot From here\nFrom"
    )
    assert second.split(b"\n", 1)[1] == (
        b"Return-Path: <>\n"
        b"X-Original-To: frank@example.com\n"
        b"Delivered-To: frank@example.com\n"
        b"Subject: two\n\nsecond\n\n"
    )
    assert data.endswith(b"Subject: two\n\nsecond\n\n")
    assert oct(box.stat().st_mode & 0o777) == "0o600"
    assert not Path(f"{box}.lock").exists()


def test_parent_directory_is_not_created(tmp_path):
    status = deliver_mbox_sync(MSG, "", MboxTarget(tmp_path / "no/such/box", "a@b.c"))
    assert status.dsn == "4.2.0"
    assert status.deferred
    assert not (tmp_path / "no").exists()


def test_directory_or_symlink_is_refused_as_postfix_safe_open_does(tmp_path):
    # Texts and DSN recorded from Postfix 3.7 virtual(8) (postfix_symlinks.json).
    (tmp_path / "dir").mkdir()
    status = deliver_mbox_sync(MSG, "", MboxTarget(tmp_path / "dir", "a@b.c"))
    assert (status.dsn, status.text) == (
        "4.2.0",
        f"delivery failed to mailbox {tmp_path / 'dir'}: cannot open file: Is a directory",
    )
    (tmp_path / "real").write_bytes(b"")
    os.symlink(tmp_path / "real", tmp_path / "link")
    status = deliver_mbox_sync(MSG, "", MboxTarget(tmp_path / "link", "a@b.c"))
    assert (status.dsn, status.text) == (
        "4.2.0",
        f"delivery failed to mailbox {tmp_path / 'link'}: file is a symbolic link",
    )
    assert (tmp_path / "real").read_bytes() == b""


def test_mailbox_owned_by_someone_else_defers(tmp_path):
    box = tmp_path / "box"
    box.write_bytes(b"")
    other = os.geteuid() + 1
    status = deliver_mbox_sync(MSG, "", MboxTarget(box, "a@b.c", uid=other))
    assert (status.dsn, status.text) == ("4.2.0", f"destination {box} is not owned by recipient")
    relaxed = deliver_mbox_sync(
        MSG, "", MboxTarget(box, "a@b.c", uid=other), strict_ownership=False
    )
    assert relaxed.delivered


def test_busy_dotlock_defers(tmp_path):
    box = tmp_path / "box"
    Path(f"{box}.lock").write_bytes(b"")
    status = deliver_mbox_sync(MSG, "", MboxTarget(box, "a@b.c"), lock_attempts=2, lock_delay=0.01)
    assert status.dsn == "4.2.0"
    assert Path(f"{box}.lock").exists()  # someone else's lock is left alone
    assert not box.exists() or box.read_bytes() == b""


def test_stale_dotlock_is_removed(tmp_path, monkeypatch):
    import mailhost.delivery.mbox as mbox

    box = tmp_path / "box"
    lock = Path(f"{box}.lock")
    lock.write_bytes(b"")
    # A fresh lock is respected ...
    assert deliver_mbox_sync(MSG, "", MboxTarget(box, "a@b.c"), lock_attempts=1).dsn == "4.2.0"
    # ... one older than stale_lock_time (ctime, as Postfix checks) is removed.
    time.sleep(0.05)
    monkeypatch.setattr(mbox, "STALE_LOCK_TIME", 0.01)
    status = deliver_mbox_sync(MSG, "", MboxTarget(box, "a@b.c"), lock_attempts=2)
    assert status.delivered
    assert not lock.exists()


def test_fcntl_lock_held_by_another_process_defers(tmp_path):
    box = tmp_path / "box"
    box.write_bytes(b"")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,os,sys,time\n"
            f"fd=os.open({str(box)!r}, os.O_RDWR)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        status = deliver_mbox_sync(
            MSG, "", MboxTarget(box, "a@b.c"), lock_attempts=2, lock_delay=0.01
        )
        assert status.dsn == "4.2.0"
        assert "unable to lock for exclusive access" in status.text
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    assert box.read_bytes() == b""


def test_concurrent_appends_never_interleave(tmp_path):
    box = tmp_path / "box"
    bodies = [(b"Subject: %d\n\n" % i) + (b"line %d\n" % i) * 500 for i in range(8)]
    threads = [
        threading.Thread(
            target=deliver_mbox_sync,
            args=(body, "", MboxTarget(box, "a@b.c")),
            kwargs={"lock_delay": 0.01},
        )
        for body in bodies
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = box.read_bytes()
    for i, body in enumerate(bodies):
        assert body + b"\n" in data, i


def test_size_limit_refuses_without_writing(tmp_path):
    box = tmp_path / "box"
    box.write_bytes(b"x" * 100)
    status = deliver_mbox_sync(MSG, "", MboxTarget(box, "a@b.c"), file_size_limit=150)
    assert status.dsn == "5.2.2"
    assert status.text == f"delivery failed to mailbox {box}: error writing message: File too large"
    assert box.read_bytes() == b"x" * 100


def test_failed_write_is_truncated_back(tmp_path):
    # A real short write: RLIMIT_FSIZE stops the file mid-message with EFBIG,
    # exactly how virtual(8) meets virtual_mailbox_limit.
    box = tmp_path / "box"
    box.write_bytes(b"old mail\n")
    code = (
        "import resource, signal\n"
        "from pathlib import Path\n"
        "from mailhost.delivery.mbox import MboxTarget, deliver_mbox_sync\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))\n"
        f"s = deliver_mbox_sync(b'Subject: big\\n\\n' + b'y' * 100000, '', MboxTarget(Path({str(box)!r}), 'a@b.c'))\n"
        "print(s.dsn, s.text)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("5.2.2 delivery failed to mailbox ")
    assert out.stdout.rstrip().endswith("error writing message: File too large")
    assert box.read_bytes() == b"old mail\n"


def test_loop_bounces(tmp_path):
    status = deliver_mbox_sync(
        b"Delivered-To: a@b.c\n\nx\n", "", MboxTarget(tmp_path / "box", "A@B.C")
    )
    assert (status.dsn, status.text) == ("5.4.6", "mail forwarding loop for A@B.C")
    assert not (tmp_path / "box").exists()


def test_a_mailbox_with_two_hard_links_is_refused_as_safe_open_does(tmp_path):
    (tmp_path / "box").write_bytes(b"")
    os.link(tmp_path / "box", tmp_path / "other")
    status = deliver_mbox_sync(MSG, "", MboxTarget(tmp_path / "box", "a@b.c"))
    assert (status.dsn, status.text) == (
        "4.2.0",
        f"delivery failed to mailbox {tmp_path / 'box'}: file has 2 hard links",
    )
    assert (tmp_path / "other").read_bytes() == b""


@pytest.mark.skipif(os.geteuid() != 0, reason="a root-owned link needs root")
def test_local_follows_only_roots_link_in_a_directory_others_cannot_write(tmp_path):
    # safe_open(3): a link owned by root is trusted only in a root-owned
    # directory that group and others cannot write (local(8) only).
    spool, real = tmp_path / "spool", tmp_path / "real"
    spool.mkdir(mode=0o755)
    real.write_bytes(b"")
    (spool / "user").symlink_to(real)
    target = MboxTarget(spool / "user", "u@b.c", base=spool, root_symlinks=True)
    assert deliver_mbox_sync(MSG, "", target, locks=("fcntl",)).delivered
    assert real.read_bytes().startswith(b"From MAILER-DAEMON  ")
    spool.chmod(0o1777)
    status = deliver_mbox_sync(MSG, "", target, locks=("fcntl",), dsn="5.2.0")
    assert (status.dsn, status.text.rsplit(": ", 1)[1]) == ("5.2.0", "file is a symbolic link")
    virtual = MboxTarget(spool / "user", "u@b.c", base=spool)
    spool.chmod(0o755)
    assert deliver_mbox_sync(MSG, "", virtual, locks=("fcntl",)).text.endswith(
        "file is a symbolic link"
    )


def test_a_linked_directory_below_the_base_is_never_followed(tmp_path, caplog):
    base, elsewhere = tmp_path / "vmail", tmp_path / "elsewhere"
    base.mkdir()
    elsewhere.mkdir()
    (base / "example.com").symlink_to(elsewhere)
    target = MboxTarget(base / "example.com" / "frank", "frank@example.com", base=base)
    status = deliver_mbox_sync(MSG, "", target)
    assert (status.dsn, status.text) == (
        "4.2.0",
        f"delivery failed to mailbox {target.path}: cannot open file: "
        "Too many levels of symbolic links",
    )
    assert list(elsewhere.iterdir()) == []
    assert any(f"symbolic link {base / 'example.com'}" in r.getMessage() for r in caplog.records)
