"""A directory made for a recipient appears under its name only once it is
the recipient's: concurrent first deliveries to a new mailbox never see it
owned by root (they would fail their writability check and defer, as the
issue 17 benchmark found with mailhost_inline_delivery = no)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mailhost.delivery.dirfd import make_dir_at, rename_noreplace
from tests.delivery.inotify import IN_MOVED_TO, TreeWatch

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="ownership needs root")


def test_concurrent_makers_leave_one_handed_over_directory_and_no_staging_name(
    tmp_path: Path,
) -> None:
    base = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    seen_root: list[str] = []
    made: list[bool] = []
    stop = threading.Event()

    def observe(name: str) -> None:
        while not stop.is_set():
            try:
                if os.stat(name, dir_fd=base).st_uid == 0:
                    seen_root.append(name)
            except FileNotFoundError:
                pass

    for round_ in range(30):
        name = f"m{round_}"
        watcher = threading.Thread(target=observe, args=(name,))
        watcher.start()

        def create(name: str = name) -> None:
            fd, new = make_dir_at(base, name, str(tmp_path / name), NOBODY, NOBODY)
            os.close(fd)
            made.append(new)

        makers = [threading.Thread(target=create) for _ in range(4)]
        for t in makers:
            t.start()
        for t in makers:
            t.join()
        stop.set()
        watcher.join()
        stop.clear()
        assert os.stat(tmp_path / name).st_uid == NOBODY
    assert seen_root == []
    assert made.count(True) == 30  # exactly one maker per directory made it
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"m{i}" for i in range(30))
    os.close(base)


def test_the_name_appears_only_once_the_directory_is_handed_over(tmp_path: Path) -> None:
    # inotify sees every change in order: the final name must come into
    # being by a rename (IN_MOVED_TO) and never change owner afterwards.
    base = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    watch = TreeWatch(tmp_path)
    try:
        fd, made = make_dir_at(base, "new", str(tmp_path / "new"), NOBODY, NOBODY)
        os.close(fd)
        events = watch.events()
    finally:
        watch.close()
        os.close(base)
    assert made
    final = [e for e in events if e.startswith(f"{tmp_path}/new: ")]
    assert final == [f"{tmp_path}/new: {IN_MOVED_TO | 0x40000000:#x}"]
    assert os.stat(tmp_path / "new").st_uid == NOBODY


def test_rename_noreplace_keeps_an_existing_target(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep").write_text("x")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        answer = rename_noreplace(fd, "a", "b")
        if answer is None:
            pytest.skip("renameat2(RENAME_NOREPLACE) not supported here")
        assert answer is False
        assert (tmp_path / "a").is_dir()
        assert (tmp_path / "b" / "keep").read_text() == "x"
        assert rename_noreplace(fd, "a", "c") is True
        assert (tmp_path / "c").is_dir()
        assert not (tmp_path / "a").exists()
    finally:
        os.close(fd)
