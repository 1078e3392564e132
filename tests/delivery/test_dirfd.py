"""The directory-descriptor walk below a base: links refused wherever they
are, missing directories made and opened without following, a base that is
itself a link (the administrator's) followed."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.delivery.dirfd import SymlinkRefused, split_relative, walk
from mailhost.delivery.maildir import MaildirTarget, deliver_maildirs_sync, open_maildir
from mailhost.fsutil import OpenDir, fsync_dir

MSG = b"Subject: hi\n\nhello\n"


def test_walk_makes_missing_directories_and_reports_it(tmp_path: Path) -> None:
    fd, made = walk(str(tmp_path), ["a", "b"], create=True)
    os.close(fd)
    assert made
    assert (tmp_path / "a" / "b").is_dir()
    fd, made = walk(str(tmp_path), ["a", "b"], create=True)
    os.close(fd)
    assert not made


@pytest.mark.parametrize("where", [0, 1, 2])
def test_a_link_at_any_depth_is_refused_and_named(tmp_path: Path, where: int) -> None:
    parts = ["d", "m", "new"]
    (tmp_path / "elsewhere").mkdir()
    real = tmp_path / "base"
    real.mkdir()
    for i in range(len(parts)):
        path = real.joinpath(*parts[: i + 1])
        if i == where:
            path.symlink_to(tmp_path / "elsewhere")
            break
        path.mkdir(parents=True)
    with pytest.raises(SymlinkRefused) as info:
        walk(str(real), parts, create=True)
    assert info.value.errno == errno.ELOOP
    assert info.value.link == str(real.joinpath(*parts[: where + 1]))
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_the_base_itself_may_be_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "base").symlink_to(tmp_path / "real")
    fd, _ = walk(str(tmp_path / "base"), ["x"], create=True)
    os.close(fd)
    assert (tmp_path / "real" / "x").is_dir()


def test_a_missing_base_is_made_like_the_rest(tmp_path: Path) -> None:
    fd, made = walk(str(tmp_path / "new-base"), ["d"], create=True)
    os.close(fd)
    assert made
    assert (tmp_path / "new-base" / "d").is_dir()


def test_a_file_where_a_directory_belongs_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        walk(str(tmp_path), ["f", "x"], create=True)


def test_open_maildir_gives_descriptors_that_fsync(tmp_path: Path) -> None:
    home = open_maildir(MaildirTarget(tmp_path / "base" / "m", "a@b.c", base=tmp_path / "base"))
    try:
        assert isinstance(home.new, OpenDir)
        assert home.new.path == str(tmp_path / "base" / "m" / "new")
        fsync_dir(home.new)
        assert (tmp_path / "base" / "m" / "cur").is_dir()
    finally:
        home.close()


def test_delivery_below_a_base_makes_and_fills_the_maildir(tmp_path: Path) -> None:
    target = MaildirTarget(tmp_path / "base" / "m", "a@b.c", base=tmp_path / "base")
    (result,) = deliver_maildirs_sync(MSG, "", [target])
    assert result.status.delivered
    assert len(list((tmp_path / "base" / "m" / "new").iterdir())) == 1


@given(st.lists(st.sampled_from(["a", "", ".", "b"]), max_size=6))
def test_split_relative_keeps_only_real_components(parts: list[str]) -> None:
    assert split_relative("/".join(parts)) == [p for p in parts if p not in ("", ".")]


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership needs root")
def test_directories_the_recipient_cannot_write_defer_as_virtual_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # virtual(8) writes as the recipient, so the kernel refuses a tmp/ the
    # recipient cannot write; as root we make the same check ourselves.
    box = tmp_path / "m"
    for sub in ("tmp", "new", "cur"):
        (box / sub).mkdir(parents=True)
    target = MaildirTarget(box, "a@b.c", uid=65534, gid=65534, base=tmp_path)
    (result,) = deliver_maildirs_sync(MSG, "", [target])
    assert result.status.dsn == "4.2.0"
    assert result.status.text.startswith(f"maildir delivery failed: create maildir file {box}/tmp/")
    assert result.status.text.endswith(": Permission denied")
    messages = [r.getMessage() for r in caplog.records]
    assert "maildir access problem for UID/GID=65534/65534: Permission denied" in messages
    assert "perhaps you need to create the maildirs in advance" in messages
    os.chown(box / "tmp", 65534, 65534)
    os.chown(box / "new", 0, 65534)
    (box / "new").chmod(0o770)  # the group may write: so may the recipient
    (result,) = deliver_maildirs_sync(MSG, "", [target])
    assert result.status.delivered
