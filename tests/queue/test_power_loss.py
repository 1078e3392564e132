"""What a power loss leaves of committed queue files and Maildir copies, on a real ext4 without
a journal: the file system is an image on a loop device, and "the disk
after the crash" is a copy of the image taken right after the commits
(what the loop device had been sent, no unmount, no sync), checked and
repaired by e2fsck -y as the boot after a crash would.

Without a journal, a directory's fsync writes the directory, not the inodes
linked into it: a nameless queue file (O_TMPFILE, linked at commit) kept a
link count of 0 on disk and e2fsck cleared its name.  Needs root, a loop
device and e2fsprogs; skipped where those are missing."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhost.delivery.groupcommit import deliver_maildir
from mailhost.delivery.maildir import MaildirTarget
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.queue.store import QueueStore

ENVELOPE = Envelope("tester@client.test", (Recipient("alice@example.com"),), 1795879051.0)
CONTENT = [b"Subject: hello", b"", b"body"]
TOOLS = ("mkfs.ext4", "e2fsck", "debugfs", "mount", "umount")


@pytest.fixture
def ext4_without_journal(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(mount point, image file) of a fresh ext4 without a journal."""
    if os.geteuid() != 0 or not all(shutil.which(t) for t in TOOLS):
        pytest.skip("needs root and e2fsprogs (mkfs.ext4, e2fsck, debugfs) to mount an image")
    image, mountpoint = tmp_path / "ext4.img", tmp_path / "mnt"
    mountpoint.mkdir()
    with image.open("wb") as f:
        f.truncate(32 << 20)
    # 1 KiB blocks: four inodes per inode table block, so the queue files'
    # inodes do not all share the directory's block (a write of one block
    # carries every inode in it).
    mkfs = ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-b", "1024", str(image)]
    subprocess.run(mkfs, check=True, capture_output=True)
    mounted = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mountpoint)], check=False, capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a loop device here: {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint, image
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False, capture_output=True)


def after_crash(image: Path, copy: Path) -> None:
    """``copy`` is the disk as a crash now would leave it, repaired by fsck."""
    shutil.copyfile(image, copy)
    fsck = subprocess.run(["e2fsck", "-fy", str(copy)], check=False, capture_output=True, text=True)
    assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr  # 1: errors corrected


def debugfs(image: Path, request: str) -> bytes:
    run = subprocess.run(["debugfs", "-R", request, str(image)], capture_output=True, check=True)
    return run.stdout


async def test_committed_queue_files_survive_a_crash_on_ext4_without_journal(
    ext4_without_journal: tuple[Path, Path], tmp_path: Path
) -> None:
    mountpoint, image = ext4_without_journal
    store = QueueStore(mountpoint / "queue")
    await store.setup()
    os.sync()  # the queue directories themselves are not what is tested
    ids = [await store.enqueue(ENVELOPE, CONTENT) for _ in range(12)]
    files = {qid: (mountpoint / "queue" / "incoming" / qid).read_bytes() for qid in ids}

    crashed = tmp_path / "crashed.img"
    after_crash(image, crashed)
    listed = debugfs(crashed, "ls -p /queue/incoming").decode().splitlines()
    # ``ls -p``: /INODE/MODE/UID/GID/NAME/SIZE/; a name fsck cleared has inode 0.
    fields = [line.strip("/").split("/") for line in listed if line.strip()]
    survivors = {f[4] for f in fields if f[0] != "0"}
    assert set(ids) <= survivors
    for qid, text in files.items():
        assert debugfs(crashed, f"cat /queue/incoming/{qid}") == text


async def test_maildir_copies_survive_a_crash_on_ext4_without_journal(
    ext4_without_journal: tuple[Path, Path], tmp_path: Path
) -> None:
    """Delivered (what inline delivery waits for before its 250) is on disk,
    the first copy into a maildir that did not exist yet included."""
    mountpoint, image = ext4_without_journal
    os.sync()
    boxes = [mountpoint / "vmail" / "example.com" / f"user{i % 3}" for i in range(9)]
    results = await asyncio.gather(
        *(
            deliver_maildir(b"Subject: %d\n\nbody\n" % i, "s@x.test", MaildirTarget(box, f"r{i}@x"))
            for i, box in enumerate(boxes)
        )
    )
    assert all(r.status.delivered for r in results)
    crashed = tmp_path / "crashed.img"
    after_crash(image, crashed)
    for r in results:
        assert r.path is not None
        inside = "/" + str(r.path.relative_to(mountpoint))
        assert debugfs(crashed, f"cat {inside}") == r.path.read_bytes()
