"""/etc/hosts, read the way the C library's ``files`` source reads it, for
the client name lookups that go to ``mailhost_dns_servers`` (``hosts: files
dns``): ``localhost[127.0.0.1]`` stays what it is under Postfix.

One entry a line: an address, then its canonical name and aliases; ``#``
starts a comment.  An address's name is the canonical name of its first
line; a name's addresses are those of every line listing it (names compared
without case).  The file is read again when its modification time changes.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

HOSTS = Path("/etc/hosts")


@dataclass
class Hosts:
    names: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, list[str]] = field(default_factory=dict)


def parse(text: str) -> Hosts:
    hosts = Hosts()
    for line in text.splitlines():
        words = line.partition("#")[0].split()
        if len(words) < 2:
            continue
        try:
            address = str(ipaddress.ip_address(words[0].split("%", 1)[0]))
        except ValueError:
            continue
        hosts.names.setdefault(address, words[1].lower())
        for name in words[1:]:
            known = hosts.addresses.setdefault(name.lower().rstrip("."), [])
            if address not in known:
                known.append(address)
    return hosts


_loaded: tuple[float, Hosts] | None = None


def _hosts() -> Hosts:
    global _loaded  # noqa: PLW0603 - one cached copy of one file
    try:
        mtime = os.stat(HOSTS).st_mtime
    except OSError:
        return Hosts()
    if _loaded is None or _loaded[0] != mtime:
        try:
            text = HOSTS.read_text(errors="replace")
        except OSError:
            return Hosts()
        _loaded = (mtime, parse(text))
    return _loaded[1]


def name_of(address: str) -> str | None:
    return _hosts().names.get(address)


def addresses_of(name: str) -> list[str]:
    return list(_hosts().addresses.get(name.lower().rstrip("."), []))
