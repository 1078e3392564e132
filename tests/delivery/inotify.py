"""A small inotify(7) watcher (ctypes on libc) for the storage-safety tests:
every change made below a directory tree while it is watched — a name
created, moved or removed, a file written, an owner or mode changed."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from pathlib import Path

_LIBC = ctypes.CDLL(None, use_errno=True)

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

#: Everything that changes an inode or a name (reads are not changes).
CHANGES = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
    | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
)  # fmt: skip

_EVENT = struct.Struct("iIII")


class TreeWatch:
    """Watch every directory of ``root`` (taken when constructed) for changes."""

    def __init__(self, root: Path) -> None:
        self.fd = _LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.paths: dict[int, Path] = {}
        for directory in [root, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())]:
            wd = _LIBC.inotify_add_watch(self.fd, os.fsencode(directory), CHANGES)
            if wd < 0:
                raise OSError(ctypes.get_errno(), "inotify_add_watch", str(directory))
            self.paths[wd] = directory

    def events(self) -> list[str]:
        """The changes seen so far, as ``PATH: MASK``."""
        seen: list[str] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return seen
            except OSError as exc:  # pragma: no cover - EINTR
                if exc.errno == errno.EINTR:
                    continue
                raise
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = data[offset : offset + length].rstrip(b"\0").decode(errors="replace")
                offset += length
                seen.append(f"{self.paths.get(wd, '?')}/{name}: {mask:#x}")

    def close(self) -> None:
        os.close(self.fd)
