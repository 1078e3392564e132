"""Maildir unique names and what a file name says (D. J. Bernstein's
cr.yp.to/proto/maildir.html, spec 5.1–5.3, with Dovecot's ``,S=``/``,W=``
fields so Dovecot never needs to stat() our files).

    <sec>.M<usec>P<pid>Q<n>R<random>.<host>,S=<size>,W=<vsize>[:2,<flags>]
"""

from __future__ import annotations

import itertools
import random
import re
import socket
import threading
import time
from dataclasses import dataclass

from mailhost.log import current_pid

_FLAG_LETTERS = frozenset("DFPRST")


def escape_hostname(host: str) -> str:
    """The host part of a unique name: ``/`` and ``:`` may not appear (5.1)."""
    return host.replace("/", "\\057").replace(":", "\\072")


class UniqueNames:
    """Maildir unique names for this process: ``M`` and the seconds come from
    one clock reading, ``P`` is the pid, ``Q`` counts names made by this
    process and ``R`` adds 64 random bits, so names never repeat even within
    one microsecond or across a fork."""

    def __init__(self, hostname: str | None = None) -> None:
        self.host = escape_hostname(hostname or socket.gethostname())
        self._count = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> str:
        ns = time.time_ns()
        with self._lock:
            n = next(self._count)
        sec, usec = divmod(ns // 1000, 1_000_000)
        # random's generator is reseeded in a forked child; no system call
        # per name as os.urandom would make.
        rand = random.getrandbits(64)
        return f"{sec}.M{usec}P{current_pid()}Q{n}R{rand:016x}.{self.host}"


#: The process-wide name source.
NAMES = UniqueNames()


def vsize(content: bytes) -> int:
    """RFC822.SIZE of LF-terminated content: each bare LF counts as CRLF."""
    return len(content) + content.count(b"\n") - content.count(b"\r\n")


def sized_name(unique: str, size: int, virtual_size: int) -> str:
    return f"{unique},S={size},W={virtual_size}"


@dataclass(frozen=True)
class MaildirFileInfo:
    """What a maildir file name says: base name, ``S=``/``W=`` and flags."""

    base: str
    size: int | None
    vsize: int | None
    flags: str


def _field(base: str, key: str) -> int | None:
    # Dovecot accepts ,S=/,W= only when the digits run to ',' or the end of
    # the base name (the ':' info was split off already).
    m = re.search(rf",{key}=([0-9]+)(?=,|$)", base)
    return int(m.group(1)) if m else None


def parse_filename(name: str) -> MaildirFileInfo:
    """Split ``1.M1P1.h,S=36,W=41:2,S`` into its parts (spec 5.1, 5.2)."""
    base, sep, info = name.partition(":")
    flags = ""
    if sep and info.startswith("2,"):
        flags = info[2:].split(",", 1)[0]
    return MaildirFileInfo(base, _field(base, "S"), _field(base, "W"), flags)


def info_suffix(flags: str) -> str:
    """``:2,`` plus the standard flags in ASCII order (``SRF`` → ``:2,FRS``);
    Dovecot's keyword letters a–z follow them."""
    std = sorted(set(flags) & _FLAG_LETTERS)
    keywords = sorted({f for f in flags if "a" <= f <= "z"})
    return ":2," + "".join(std + keywords)
