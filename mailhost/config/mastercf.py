"""master.cf: which listeners ``mailhost serve`` opens, and their ``-o`` overrides.

Postfix administrators declare listeners in master.cf (master(5)); mailhost
reads the same file.  Each logical line (a line starting with whitespace
continues the previous one; ``#`` lines are comments, even between
continuation lines) has eight fields::

    service type private unpriv chroot wakeup maxproc command [args...]

``inet`` services whose command is ``smtpd`` become listeners (with their
``maxproc`` process limit: the cap on concurrent sessions); the other lines
are sorted by :mod:`mailhost.config.services`: work mailhost does in-process
or does not need loads silently (a stock Debian master.cf gives no warning),
a service it does not run (postscreen, a ``pipe`` transport, ...) is named
in a warning.  ``-o name=value``
(also ``-o { name = value }``, Postfix 3.0) overrides a main.cf parameter for
that listener only (see :meth:`mailhost.config.Config.with_overrides`).

The service field of an ``inet`` service is ``[host:]port``; a symbolic port
is a service name (``smtp`` 25, ``submission`` 587, ``submissions``/``smtps``
465) and a missing host means every address in ``inet_interfaces``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.config.services import is_smtpd_listener, service_warnings
from mailhost.errors import ConfigError
from mailhost.log import logger

log = logger("master")

#: The ports of the service names a master.cf commonly uses (IANA, RFC 8314 for
#: submissions/smtps); other names are asked of the system's services database.
WELL_KNOWN_PORTS: Mapping[str, int] = {
    "smtp": 25,
    "submission": 587,
    "submissions": 465,
    "smtps": 465,
    "lmtp": 24,
}

_TYPES = {"inet", "unix", "unix-dgram", "fifo", "pass"}
_YES_NO = {"y", "n", "-"}
_OVERRIDE = re.compile(r"^([A-Za-z0-9_]+)\s*=\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class MasterEntry:
    """One service line of master.cf."""

    service: str
    type: str
    private: str
    unpriv: str
    chroot: str
    wakeup: str
    maxproc: str
    command: str
    args: tuple[str, ...]
    #: ``-o name=value`` pairs in file order (later ones win).
    overrides: tuple[tuple[str, str], ...]
    line: int

    @property
    def program(self) -> str:
        """The daemon's name (the command's last path component)."""
        return self.command.rsplit("/", 1)[-1]

    def override_map(self) -> dict[str, str]:
        return dict(self.overrides)


@dataclass(frozen=True)
class Listener:
    """An address smtpd listens on, with the overrides of its master.cf line."""

    service: str
    host: str | None
    port: int
    overrides: Mapping[str, str] = field(default_factory=dict)
    line: int = 0
    #: master.cf's maxproc: None for ``-`` (default_process_limit), 0 for no limit.
    maxproc: int | None = None


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, joined text) of each logical line (master(5))."""
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[:1].isspace() and current:
            current.append(stripped)
            continue
        if current:
            yield start, " ".join(current)
        current, start = [stripped], number
    if current:
        yield start, " ".join(current)


def _tokens(text: str) -> list[str]:
    """Whitespace-separated fields; ``{ ... }`` groups stay one token (Postfix 3.0)."""
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "{":
            depth, j = 0, i
            while j < n:
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if depth != 0:
                raise ValueError("missing '}'")
            tokens.append(text[i : j + 1])
            i = j + 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        tokens.append(text[i:j])
        i = j
    return tokens


def _override(arg: str, where: str) -> tuple[str, str]:
    if arg.startswith("{") and arg.endswith("}"):
        arg = arg[1:-1].strip()
    match = _OVERRIDE.match(arg)
    if match is None:
        raise ConfigError(f'{where}: bad "-o name=value" argument: "{arg}"')
    return match.group(1), match.group(2).strip()


def parse_master_cf(text: str, filename: str = "master.cf") -> list[MasterEntry]:
    """Parse master.cf text; malformed lines raise ConfigError with Postfix's
    ``FILE: line N: ...`` location."""
    entries: list[MasterEntry] = []
    seen: set[tuple[str, str]] = set()
    for number, line in logical_lines(text):
        where = f"{filename}: line {number}"
        try:
            fields = _tokens(line)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if len(fields) < 8:
            raise ConfigError(f"{where}: bad field count")
        service, type_, private, unpriv, chroot, wakeup, maxproc, command = fields[:8]
        if type_ not in _TYPES:
            raise ConfigError(f'{where}: field "type": bad value: "{type_}"')
        for name, value in (("private", private), ("unpriv", unpriv), ("chroot", chroot)):
            if value not in _YES_NO:
                raise ConfigError(f'{where}: field "{name}": bad value: "{value}"')
        if not re.fullmatch(r"-|\d+\??", wakeup):
            raise ConfigError(f'{where}: field "wakeup": bad value: "{wakeup}"')
        if not re.fullmatch(r"-|\d+", maxproc):
            raise ConfigError(f'{where}: field "maxproc": bad value: "{maxproc}"')
        if (service, type_) in seen:
            raise ConfigError(f"{where}: duplicate service name: {service}/{type_}")
        seen.add((service, type_))
        args: list[str] = []
        overrides: list[tuple[str, str]] = []
        rest = fields[8:]
        i = 0
        while i < len(rest):
            arg = rest[i]
            if arg == "-o" and i + 1 < len(rest):
                overrides.append(_override(rest[i + 1], where))
                i += 2
                continue
            if arg.startswith("-o") and len(arg) > 2:
                overrides.append(_override(arg[2:], where))
            else:
                args.append(arg)
            i += 1
        entries.append(
            MasterEntry(
                service, type_, private, unpriv, chroot, wakeup, maxproc, command,
                tuple(args), tuple(overrides), number,
            )
        )  # fmt: skip
    return entries


def read_master_cf(path: Path) -> list[MasterEntry]:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise ConfigError(f"open {path}: No such file or directory") from None
    except OSError as exc:
        raise ConfigError(f"open {path}: {exc.strerror}") from None
    return parse_master_cf(text, str(path))


def port_of(name: str, where: str) -> int:
    """A numeric port, a well-known name, or a name from the services database."""
    if name.isdigit():
        port = int(name)
        if not 0 < port < 65536:
            raise ConfigError(f"{where}: bad port number: {name}")
        return port
    if name in WELL_KNOWN_PORTS:
        return WELL_KNOWN_PORTS[name]
    try:
        return socket.getservbyname(name, "tcp")
    except OSError:
        raise ConfigError(f"{where}: unknown service: {name}/tcp") from None


def split_service(service: str, where: str) -> tuple[str | None, int]:
    """``[host:]port`` → (host or None, port); ``[::1]:25`` brackets IPv6."""
    host: str | None = None
    port = service
    if service.startswith("["):
        close = service.find("]")
        if close < 0 or service[close + 1 : close + 2] != ":":
            raise ConfigError(f"{where}: bad service address: {service}")
        host, port = service[1:close], service[close + 2 :]
    elif ":" in service:
        host, port = service.rsplit(":", 1)
    return host or None, port_of(port, where)


def smtpd_listeners(
    entries: list[MasterEntry], filename: str = "master.cf", *, warn: bool = True
) -> list[Listener]:
    """The ``inet`` ``smtpd`` services; a line mailhost will not honour as
    written (:func:`mailhost.config.services.service_warnings`) is a warning
    (``warn``: the server process logs them, not the parent that opens the
    listening sockets of its workers)."""
    listeners: list[Listener] = []
    for entry in entries:
        if is_smtpd_listener(entry.type, entry.program):
            where = f"{filename}: line {entry.line}"
            host, port = split_service(entry.service, where)
            maxproc = None if entry.maxproc == "-" else int(entry.maxproc)
            listeners.append(
                Listener(entry.service, host, port, entry.override_map(), entry.line, maxproc)
            )
    if not warn:
        return listeners
    warnings = service_warnings(
        (e.service, e.type, e.program, [name for name, _ in e.overrides]) for e in entries
    )
    for index, text in warnings:
        entry = entries[index]
        log.warning(
            "%s: line %d: service %s/%s (command %s) %s",
            filename, entry.line, entry.service, entry.type, entry.command, text,
        )  # fmt: skip
    return listeners


def declares(path: Path, program: str) -> bool:
    """True when the master.cf at ``path`` has a service run by ``program``
    (``qmgr``, ``pickup``): mailhost runs those services in-process."""
    return any(entry.program == program for entry in read_master_cf(path))
