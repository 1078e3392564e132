"""Finding and reading a user's ``.forward`` file, as local(8) does
(local(8) FORWARD FILES; postconf(5) forward_path, forward_expansion_filter).

``forward_path`` (default ``$home/.forward${recipient_delimiter}${extension},
$home/.forward``) is not main.cf-expanded: each element is expanded against
the recipient's attributes ``$user``, ``$home``, ``$shell``, ``$recipient``,
``$extension`` (without the delimiter), ``$domain``, ``$local``,
``$recipient_delimiter`` (the delimiter actually found) with the
``${name?value}`` / ``${name:value}`` forms; every attribute value is passed
through ``forward_expansion_filter`` (other characters become ``_``).  An
element that refers plainly (``$name``, ``${name}``) to an empty attribute,
or to an unknown name, is skipped — so without an extension the first
default element is not tried.  The first file that exists is used.

The file is opened with the recipient's privileges (per-thread filesystem
ids when running as root, :mod:`mailhost.delivery.filewriter`) and ignored,
with local(8)'s warning, when it is not a regular file, is owned by somebody
other than the recipient or root, or is world-writable.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from mailhost.config.expand import Expander, MacroError
from mailhost.config.lists import split_list
from mailhost.delivery.filewriter import PrivilegeError, filesystem_ids
from mailhost.log import logger

log = logger("local")

_NAME = re.compile(r"[A-Za-z0-9_]+")


def _closing(text: str) -> int:
    """Index of the bracket closing ``text[0]`` (or the end of the text)."""
    close = "}" if text[0] == "{" else ")"
    depth = 0
    for j, ch in enumerate(text):
        depth += ch == text[0]
        depth -= ch == close
        if depth == 0:
            return j
    return len(text)


def _plain_references(element: str) -> set[str]:
    """Names used as ``$name``, ``${name}`` or ``$(name)`` — not the ones
    inside a ``${name?...}``/``${name:...}`` branch, which are only expanded
    when chosen."""
    names: set[str] = set()
    i = 0
    while (i := element.find("$", i)) >= 0:
        rest = element[i + 1 :]
        if rest[:1] == "$":
            i += 2
        elif rest[:1] in ("{", "("):
            end = _closing(rest)
            if m := _NAME.fullmatch(rest[1:end]):
                names.add(m.group())
            i += end + 2
        else:
            if m := _NAME.match(rest):
                names.add(m.group())
            i += 1
    return names


def _filtered(value: str, allowed: str) -> str:
    return "".join(ch if ch in allowed else "_" for ch in value)


def expand_forward_path(
    forward_path: str, attributes: Mapping[str, str], allowed: str
) -> list[str]:
    """The candidate file names, in order (elements that do not expand
    completely left out)."""
    values = {name: _filtered(value, allowed) for name, value in attributes.items()}
    expander = Expander(lambda name: values.get(name, ""), "forward_path")
    paths: list[str] = []
    for element in split_list(forward_path):
        if any(not values.get(name) for name in _plain_references(element)):
            continue
        try:
            paths.append(expander.expand(element))
        except MacroError:
            continue
    return paths


@dataclass(frozen=True)
class ForwardFile:
    path: str
    #: None: the file is there but must be ignored (a warning was logged).
    text: str | None


def _read(path: str, uid: int) -> ForwardFile | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        log.warning("file %s is not a regular file", path)
        return ForwardFile(path, None)
    if st.st_uid not in (0, uid):
        log.warning("file %s has bad owner uid %d", path, st.st_uid)
        return ForwardFile(path, None)
    if st.st_mode & 0o002:
        log.warning("file %s is world writable", path)
        return ForwardFile(path, None)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with open(fd, encoding="utf-8", errors="surrogateescape") as f:
        return ForwardFile(path, f.read())


def find_forward_file(paths: list[str], uid: int, gid: int) -> ForwardFile | None:
    """The first existing candidate, read as ``uid``/``gid`` (blocking: run
    it on the offload pool).  Raises OSError when one cannot be read."""
    switch = os.geteuid() == 0 and uid != 0
    for path in paths:
        with filesystem_ids(uid, gid) if switch else contextlib.nullcontext():
            found = _read(path, uid)
        if found is not None:
            return found
    return None


__all__ = ["ForwardFile", "PrivilegeError", "expand_forward_path", "find_forward_file"]
