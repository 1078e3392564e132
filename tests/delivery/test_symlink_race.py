"""Nothing is ever created or changed outside ``virtual_mailbox_base``
(issue 15, item 1): a real ``mailhost serve`` on loopback takes mail from 20
SMTP clients at once while a swapper thread exchanges, thousands of times,
directories and files below the base with symbolic links into a sibling
directory — a maildir's ``new/``, ``tmp/`` and ``cur/``, its
``maildirsize``, a whole mailbox directory, a domain directory and an mbox
file — with renameat2(RENAME_EXCHANGE), so the name is always there and
flips between the real thing and a link.

The sibling directory is walked before and after (every inode: number,
size, mode, owner, link count, mtime and ctime) and watched with inotify
throughout: both must show zero changes.  With quota (maildirsize read at
RCPT and written at delivery, under its flock) and without (the group
commit), as root with the recipients' uid as virtual(8) runs them."""

from __future__ import annotations

import ctypes
import os
import random
import smtplib
import threading
import time
from pathlib import Path

import pytest

from tests.delivery.inotify import TreeWatch
from tests.support.maincf import serve_site
from tests.support.server import serve_cli

_LIBC = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2

CLIENTS = 20
MESSAGES = 12
MIN_SWAPS = 2000
UID = 65534 if os.geteuid() == 0 else os.geteuid()
GID = 65534 if os.geteuid() == 0 else os.getegid()

#: recipient → mailbox (virtual_mailbox_maps); ``h`` is never touched.
MAILBOXES = {
    "a": "example.com/a/",
    "b": "example.com/b/",
    "c": "example.com/c/",
    "d": "example.com/d/",
    "e": "swapped.example/e/",
    "f": "example.com/f/",
    "g": "example.com/g",
    "h": "example.com/h/",
}
#: what is exchanged with a link into ``outside`` (relative to the base).
SWAPPED = [
    "example.com/a/new",
    "example.com/b/tmp",
    "example.com/c/cur",
    "example.com/d/maildirsize",
    "swapped.example",
    "example.com/f",
    "example.com/g",
]


def exchange(a: Path, b: Path) -> None:
    if _LIBC.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE):
        raise OSError(ctypes.get_errno(), "renameat2", str(a))


def snapshot(root: Path) -> dict[str, tuple[int, ...]]:
    """Every inode below ``root`` (and itself), as lstat shows it."""
    found = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        found[str(path)] = (
            st.st_ino, st.st_size, st.st_mode, st.st_uid, st.st_gid, st.st_nlink,
            st.st_mtime_ns, st.st_ctime_ns,
        )  # fmt: skip
    return found


def layout(base: Path, outside: Path) -> list[tuple[Path, Path]]:
    """The mailboxes (with mail and a maildirsize), the outside tree the
    links lead into, and the link beside each swapped name (``NAME.link``)."""
    for mailbox in MAILBOXES.values():
        path = base / mailbox
        if mailbox.endswith("/"):
            for sub in ("tmp", "new", "cur"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            (path / "maildirsize").write_bytes(b"100000000S\n0 0\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    for name in ("new", "tmp", "cur", "e/new", "e/tmp", "e/cur", "f/new", "f/tmp", "f/cur"):
        (outside / name).mkdir(parents=True, exist_ok=True)
    (outside / "maildirsize").write_bytes(b"100000000S\n0 0\n")
    (outside / "mbox").write_bytes(b"")
    for path in [outside, *outside.rglob("*"), base, *base.rglob("*")]:
        os.chown(path, UID, GID, follow_symlinks=False)
        if path.is_dir():
            path.chmod(0o777)  # nothing but our own rules keeps root out
    if os.geteuid() == 0:
        os.chown(base, 0, 0)
    pairs = []
    for rel, target in zip(
        SWAPPED,
        ["new", "tmp", "cur", "maildirsize", ".", "f", "mbox"],
        strict=True,
    ):
        link = base / f"{rel}.link"
        link.symlink_to(outside / target if target != "." else outside)
        pairs.append((base / rel, link))
    return pairs


class Swapper(threading.Thread):
    def __init__(self, pairs: list[tuple[Path, Path]]) -> None:
        super().__init__(daemon=True)
        self.pairs = pairs
        self.stop = threading.Event()
        self.swaps = 0
        self.flipped: set[int] = set()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                i = random.randrange(len(self.pairs))
                exchange(*self.pairs[i])
                self.flipped ^= {i}
                self.swaps += 1
                time.sleep(random.choice((0, 0, 0.0001, 0.0005)))
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            for i in sorted(self.flipped):
                exchange(*self.pairs[i])


def client(
    port: int, seed: int, accepted: list[str], lock: threading.Lock, swapper: Swapper
) -> None:
    """At least MESSAGES messages, and more until the swapper did its
    MIN_SWAPS: the swaps happen while mail is delivered."""
    chooser = random.Random(seed)
    deadline = time.monotonic() + 60
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.ehlo("client.test")
        n = 0
        while n < MESSAGES or (swapper.swaps < MIN_SWAPS and time.monotonic() < deadline):
            n += 1
            rcpts = chooser.sample(sorted(MAILBOXES), chooser.choice((1, 1, 2, 3)))
            smtp.mail("sender@client.test")
            taken = [r for r in rcpts if smtp.rcpt(f"{r}@example.com")[0] == 250]
            if not taken:
                smtp.rset()
                continue
            code, _ = smtp.data(f"Subject: race {seed}.{n}\r\n\r\nbody\r\n".encode())
            assert code == 250, code
            with lock:
                accepted.extend(taken)


@pytest.mark.parametrize("quota", [True, False], ids=["quota", "no_quota"])
def test_racing_symlinks_never_lead_outside_the_base(tmp_path: Path, quota: bool) -> None:
    base, outside = tmp_path / "vmail", tmp_path / "outside"
    pairs = layout(base, outside)
    mailboxes = ", ".join(f"{r}@example.com={m}" for r, m in MAILBOXES.items())
    extra: dict[str, object] = {
        "virtual_uid_maps": f"static:{UID}",
        "virtual_gid_maps": f"static:{GID}",
        "virtual_minimum_uid": 0 if os.geteuid() else 100,
        "minimal_backoff_time": "1h",
        "maximal_backoff_time": "2h",
        "queue_run_delay": "1h",
    }
    if quota:
        extra["virtual_mailbox_limit_maps"] = "static:100000000"
    (tmp_path / "main.cf").write_text(serve_site(tmp_path, f"inline:{{{mailboxes}}}", extra))
    before = snapshot(outside)
    watch = TreeWatch(outside)
    server, port = serve_cli(tmp_path)
    swapper = Swapper(pairs)
    accepted: list[str] = []
    lock = threading.Lock()
    try:
        swapper.start()
        threads = [
            threading.Thread(target=client, args=(port, seed, accepted, lock, swapper))
            for seed in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        during = swapper.swaps
        # The queue manager finishes whatever was queued, links still swapping.
        deadline = time.monotonic() + 60
        queue = tmp_path / "queue"
        while time.monotonic() < deadline and any(
            any((queue / q).iterdir()) for q in ("incoming", "active") if (queue / q).is_dir()
        ):
            time.sleep(0.05)
    finally:
        swapper.stop.set()
        swapper.join()
        assert server.stop() == 0
    changes = watch.events()
    watch.close()
    log = server.log()
    assert swapper.error is None, swapper.error
    assert during >= MIN_SWAPS, during
    assert "Traceback" not in log
    assert changes == [], changes[:20]
    assert snapshot(outside) == before
    # The race was met: some deliveries were refused for a link...
    assert "refusing to follow symbolic link" in log or "is a symbolic link" in log, log[-3000:]
    # ...and the mailbox nobody touched got every message accepted for it.
    assert len(list((base / "example.com/h/new").iterdir())) == accepted.count("h")
    assert accepted, "no message was accepted"
