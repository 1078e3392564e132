"""fsutil: the durability idiom, group commit of directory fsyncs, safe_join."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhost import fsutil
from mailhost.fsutil import (
    UnsafePathError,
    commit_file,
    safe_join,
    temp_name,
    write_durably,
    write_durably_async,
)
from mailhost.groupsync import FsyncEach, GroupSync


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_durably_bytes_and_chunks(tmp_path: Path) -> None:
    write_durably(tmp_path / "a", b"one")
    write_durably(tmp_path / "b", [b"t", b"w", b"o"], 0o600)
    write_durably(str(tmp_path / "c"), bytearray(b"three"))
    assert (tmp_path / "a").read_bytes() == b"one"
    assert (tmp_path / "b").read_bytes() == b"two"
    assert (tmp_path / "c").read_bytes() == b"three"
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600
    assert _leftovers(tmp_path) == []


def test_write_durably_mode_ignores_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_durably(tmp_path / "m", b"x", 0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o644


def test_replace_overwrites_and_link_refuses(tmp_path: Path) -> None:
    target = tmp_path / "t"
    write_durably(target, b"old")
    write_durably(target, b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(FileExistsError):
        write_durably(target, b"other", replace=False)
    assert target.read_bytes() == b"new"
    write_durably(tmp_path / "fresh", b"linked", replace=False)
    assert (tmp_path / "fresh").read_bytes() == b"linked"
    assert (tmp_path / "fresh").stat().st_nlink == 1
    assert _leftovers(tmp_path) == []


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "t"
    write_durably(target, b"old")

    def chunks():
        yield b"partial"
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError):
        write_durably(target, chunks())
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_commit_file_and_temp_name(tmp_path: Path) -> None:
    target = tmp_path / "index"
    tmp = temp_name(target)
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".index.")
    assert tmp.name.endswith(".tmp")
    assert temp_name(target) != tmp
    tmp.write_bytes(b"data")
    commit_file(tmp, target)
    assert target.read_bytes() == b"data"
    assert not tmp.exists()


async def test_async_wrappers(tmp_path: Path) -> None:
    await write_durably_async(tmp_path / "a", (c for c in [b"x", b"y"]))
    assert (tmp_path / "a").read_bytes() == b"xy"
    await fsutil.fsync_dir_async(tmp_path)
    tmp = tmp_path / "b.tmp"
    tmp.write_bytes(b"z")
    await fsutil.commit_file_async(tmp, tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == b"z"


def test_fsync_dir_on_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsutil.fsync_dir(tmp_path / "missing")


# -- sync policies ----------------------------------------------------------------


class SlowFsync:
    """A directory fsync that takes a while and records when it ran."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.runs: list[tuple[float, float]] = []

    def __call__(self, directory: fsutil.StrPath) -> None:
        start = time.monotonic()
        fsutil.fsync_dir(directory)
        time.sleep(self.delay)
        with self.lock:
            self.runs.append((start, time.monotonic()))


async def test_group_sync_shares_directory_fsyncs(tmp_path: Path) -> None:
    fake = SlowFsync()
    syncer = GroupSync(fake)
    requested: list[float] = []
    finished: list[float] = []

    async def one(i: int) -> None:
        await asyncio.sleep(i * 0.001)
        requested.append(time.monotonic())
        mine = requested[-1]
        await syncer.sync_dir(tmp_path)
        finished.append(time.monotonic())
        # Durable only if some fsync started after the request and ended before now.
        assert any(start >= mine and end <= finished[-1] for start, end in fake.runs)

    await asyncio.gather(*(one(i) for i in range(40)))
    assert syncer.requests == 40
    assert len(fake.runs) == syncer.dir_syncs
    assert syncer.dir_syncs < 20


async def test_group_sync_reports_errors_to_the_batch(tmp_path: Path) -> None:
    syncer = GroupSync()
    results = await asyncio.gather(
        *(syncer.sync_dir(tmp_path / "missing") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, FileNotFoundError) for r in results)
    await syncer.sync_dir(tmp_path)  # the directory queue recovers


async def test_group_sync_cancelled_caller_does_not_hurt_others(tmp_path: Path) -> None:
    syncer = GroupSync(SlowFsync(0.05))
    first = asyncio.ensure_future(syncer.sync_dir(tmp_path))
    second = asyncio.ensure_future(syncer.sync_dir(tmp_path))
    await asyncio.sleep(0.01)
    first.cancel()
    await second
    assert first.cancelled()


def test_group_sync_outlives_a_loop_closed_mid_trip(tmp_path: Path) -> None:
    slow = SlowFsync(0.2)
    syncer = GroupSync(slow, lanes=1)

    async def leave_a_trip_running() -> None:
        waiting = asyncio.ensure_future(syncer.sync_dir(tmp_path))
        await asyncio.sleep(0.02)  # the trip is at its fsync; the loop closes
        assert not waiting.done()

    asyncio.run(leave_a_trip_running())
    # The lost trip never answered; the next loop's commits do not wait for it.
    asyncio.run(asyncio.wait_for(syncer.sync_dir(tmp_path), 5))
    for _ in range(100):
        if len(slow.runs) == 2:
            break
        time.sleep(0.01)
    assert len(slow.runs) == 2


@pytest.mark.parametrize("kind", [GroupSync, FsyncEach])
async def test_abandon_runs_once_the_cancelled_callers_files_are_done(
    tmp_path: Path, kind: type[FsyncEach]
) -> None:
    slow = SlowFsync(0.05)
    syncer = kind(slow)
    abandoned: list[str] = []

    def prepare() -> Sequence[fsutil.DurableFile]:
        return (fsutil.DirectoryOnly(tmp_path),)

    first = asyncio.ensure_future(syncer.commit(prepare, abandon=lambda: abandoned.append("a")))
    second = asyncio.ensure_future(syncer.commit(prepare, abandon=lambda: abandoned.append("b")))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert abandoned == []  # its fsync is still running
    await second
    for _ in range(50):
        if abandoned:
            break
        await asyncio.sleep(0.01)
    assert abandoned == ["a"]  # never for a caller that heard its answer
    assert slow.runs


async def test_fsync_each_counts(tmp_path: Path) -> None:
    syncer = FsyncEach()
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        await syncer.sync_file(fd)
    finally:
        os.close(fd)
    await syncer.sync_dir(tmp_path)
    assert (syncer.file_syncs, syncer.dir_syncs) == (1, 1)


# -- fsyncs side by side ------------------------------------------------------------


class _Events:
    """What the files of one round and its directory fsyncs did, and when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, float]] = []

    def add(self, what: str, who: str) -> None:
        with self.lock:
            self.log.append((what, who, time.monotonic()))

    def times(self, what: str) -> list[float]:
        return [when for event, _, when in self.log if event == what]


class _Recorded(fsutil.NewFile):
    """A NewFile that records when it is placed and finished; ``pipe``: its
    descriptor is a pipe's instead, which fsync refuses (EINVAL)."""

    def __init__(self, target: Path, events: _Events, *, pipe: bool = False) -> None:
        super().__init__(target, b"data", 0o600, replace=False)
        self.events = events
        self.pipe = pipe

    def write(self) -> list[int]:
        if not self.pipe:
            return list(super().write())
        read_end, write_end = os.pipe()
        os.close(write_end)
        self.fd = read_end
        return [read_end]

    def place(self, sync_errors: Sequence[OSError | None]) -> Iterable[fsutil.StrPath]:
        self.events.add("place", self.target.name)
        return super().place(sync_errors)

    def finish(self, dir_errors: Mapping[str, OSError]) -> None:
        self.events.add("finish", self.target.name)
        super().finish(dir_errors)


def test_commit_durably_reports_each_files_fsync_error(tmp_path: Path) -> None:
    events = _Events()
    files = [_Recorded(tmp_path / f"m{i}", events, pipe=i == 1) for i in range(3)]
    outcomes = fsutil.commit_durably(files)
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m0", "m2"]


def test_commit_durably_reports_each_directorys_fsync_error(tmp_path: Path) -> None:
    dirs = [tmp_path / f"d{i}" for i in range(4)]
    for d in dirs:
        d.mkdir()
    bad = os.fspath(dirs[2])

    def fsync_dir(directory: fsutil.StrPath) -> None:
        if os.fspath(directory) == bad:
            raise OSError(5, "Input/output error", bad)
        fsutil.fsync_dir(directory)

    files = [fsutil.NewFile(d / "m", b"x", 0o600, replace=False) for d in dirs]
    outcomes = fsutil.commit_durably(files, fsync_dir_fn=fsync_dir)
    assert [o is None for o in outcomes] == [True, True, False, True]
    assert isinstance(outcomes[2], OSError)
    assert outcomes[2].errno == 5


def test_commit_durably_fsyncs_side_by_side_in_order(tmp_path: Path) -> None:
    """The directory fsyncs of a round overlap; every name is placed after
    every file fsync and every file finished after every directory fsync."""
    events = _Events()
    dirs = [tmp_path / f"d{i}" for i in range(4)]
    for d in dirs:
        d.mkdir()

    def fsync_dir(directory: fsutil.StrPath) -> None:
        events.add("dir start", os.fspath(directory))
        fsutil.fsync_dir(directory)
        time.sleep(0.05)
        events.add("dir end", os.fspath(directory))

    files = [_Recorded(d / "m", events) for d in dirs]
    counts = fsutil.CommitCounts()
    outcomes = fsutil.commit_durably(files, fsync_dir_fn=fsync_dir, counts=counts)
    assert outcomes == [None] * 4
    assert (counts.file_syncs, counts.dir_syncs) == (4, 4)
    starts, ends = events.times("dir start"), events.times("dir end")
    assert max(starts) < min(ends)  # all four were running at once
    assert max(events.times("place")) < min(starts)
    assert max(ends) <= min(events.times("finish"))


def test_sync_all_raises_other_errors_after_all_are_done() -> None:
    done: list[int] = []

    def fsync(item: int) -> None:
        if item == 0:
            raise ValueError("not an fsync error")
        time.sleep(0.02)
        done.append(item)

    with pytest.raises(ValueError):
        fsutil.sync_all([0, 1, 2], fsync)
    assert sorted(done) == [1, 2]


def test_sync_all_in_a_forked_child() -> None:
    """A child forked after the fsync threads started starts its own."""
    fsutil.sync_all([1, 2, 3], lambda _: None)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        signal.alarm(10)  # a hang fails the test instead of stopping it
        try:
            done: list[int] = []
            fsutil.sync_all([1, 2, 3], done.append)
            os._exit(0 if sorted(done) == [1, 2, 3] else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# -- safe_join ----------------------------------------------------------------------


def test_safe_join_accepts_plain_relative_paths(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "example.com/bob/") == tmp_path.resolve() / "example.com/bob"
    assert safe_join(tmp_path, "a/./b") == tmp_path.resolve() / "a/b"


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("/etc/passwd", "absolute path not allowed"),
        ("../x", "'..' not allowed"),
        ("a/../../x", "'..' not allowed"),
        ("a/..", "'..' not allowed"),
        ("a\0b", "NUL byte"),
    ],
)
def test_safe_join_refuses(tmp_path: Path, relative: str, message: str) -> None:
    with pytest.raises(UnsafePathError, match=message):
        safe_join(tmp_path, relative)


def test_safe_join_refuses_symlinks_out_of_base(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (tmp_path / "outside").mkdir()
    (base / "escape").symlink_to(tmp_path / "outside")
    (base / "inside").mkdir()
    (base / "alias").symlink_to(base / "inside")
    with pytest.raises(UnsafePathError, match="resolves outside"):
        safe_join(base, "escape/bob")
    assert safe_join(base, "alias/bob") == base.resolve() / "alias/bob"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", ".", "..", "/", "\0", "x/", "link/"]), max_size=8).map(
        "".join
    )
)
def test_safe_join_never_leaves_base(
    tmp_path_factory: pytest.TempPathFactory, relative: str
) -> None:
    base = tmp_path_factory.getbasetemp() / "safe_join_base"
    base.mkdir(exist_ok=True)
    if not (base / "link").is_symlink():
        (base / "link").symlink_to(base.parent)  # points out of base
    try:
        joined = safe_join(base, relative)
    except UnsafePathError:
        assert (
            "\0" in relative
            or relative.startswith("/")
            or ".." in relative.split("/")
            or [p for p in relative.split("/") if p not in ("", ".")][:1] == ["link"]
        )
        return
    root = base.resolve()
    resolved = joined.resolve()
    assert resolved == root or root in resolved.parents


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "file", "inner", "gone", ".", ""]), min_size=1, max_size=6)
    .map("/".join)
    .filter(lambda relative: not relative.startswith("/"))  # safe_join refuses those
)
def test_resolve_below_is_resolve(tmp_path_factory: pytest.TempPathFactory, relative: str) -> None:
    """The shortcut under a resolved base answers exactly what resolve() does:
    plain directories, a regular file in the middle, missing components, and
    a symlink inside the base."""
    base = (tmp_path_factory.getbasetemp() / "resolve_below_base").resolve()
    if not base.exists():
        (base / "a" / "b").mkdir(parents=True)
        (base / "a" / "file").write_text("x")
        (base / "inner").symlink_to(base / "a")
    assert fsutil._resolve_below(os.fspath(base), relative) == os.fspath(
        (base / relative).resolve()
    )
