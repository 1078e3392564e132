"""The one durability idiom: write to a temporary name, fsync the file, rename
(or link) it into place, fsync the directory.  After the rename is durable a
reader sees the whole new file or the whole old one, never a mixture — the
basis of "250 means on disk" for queue files and Maildir messages, and of
atomic index rebuilds for ``postmap``.

``safe_join`` turns a path from a table or database into a path that is
guaranteed to stay below a base directory.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path


class UnsafePathError(ValueError):
    """A path from a table that would leave its base directory."""


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or link in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(target: Path) -> Path:
    """A unique temporary name beside ``target`` (same filesystem)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_durably(target: Path, chunks: Iterable[bytes], mode: int = 0o644) -> None:
    """Write ``chunks`` to ``target`` atomically and durably."""
    tmp = temp_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def commit_file(tmp: Path, target: Path) -> None:
    """fsync an already written file, rename it over ``target``, fsync the dir."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def safe_join(base: str | os.PathLike[str], relative: str) -> Path:
    """``base/relative``, refusing absolute paths, ``..`` components, NUL bytes
    and anything that resolves (through symlinks too) outside ``base``."""
    if "\0" in relative:
        raise UnsafePathError(f"path contains a NUL byte: {relative!r}")
    if relative.startswith("/"):
        raise UnsafePathError(f"absolute path not allowed: {relative}")
    if ".." in relative.split("/"):
        raise UnsafePathError(f"path with '..' not allowed: {relative}")
    root = Path(base).resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise UnsafePathError(f"path resolves outside {root}: {relative}")
    return root / relative
