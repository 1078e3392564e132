"""Store routes: the transport(5) values that place a domain or mailbox on a
store node, checked before they are written, and read back for the store's
host.

In a cluster an edge node delivers each mailbox to its store over LMTP:
``mailbox.mailhost_transport`` (or the domain's ``domain.transport``) holds a
transport(5) result such as ``lmtp:inet:store-1.example:24`` that the edge's
``transport_maps`` query returns (docs/cluster.md).  A value Postfix would
misread must never reach the table, so ``mailhost mailbox move`` and
``mailhost domain transport`` check it here.  The syntax is transport(5)'s
``transport:nexthop``; for the ``lmtp`` and ``smtp`` transports the nexthop
is lmtp(8)/smtp(8)'s: ``inet:host``, ``inet:host:port``, ``inet:[host]:port``,
``unix:pathname``, ``host``, ``host:port``, ``[host]`` or ``[host]:port``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhost.errors import ConfigError, UsageError
from mailhost.resolve.transport_maps import Route, parse_route

#: lmtp(8)'s default TCP port.
LMTP_PORT = 24
#: PostfixAdmin's ``domain.transport`` and ``mailbox`` columns are varchar(255).
MAX_LENGTH = 255
#: A master.cf service name (what the transport part names): no ``:``,
#: no white space, no comma.
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
#: Transports whose nexthop is a host (smtp(8), lmtp(8) and their clones by
#: these names).
HOST_TRANSPORTS = frozenset({"lmtp", "smtp", "relay"})


class TransportSyntaxError(UsageError):
    """A transport value Postfix would not read as intended (exit 64)."""


@dataclass(frozen=True)
class StoreHost:
    """Where a store listens: ``host`` (None for a ``unix:`` nexthop) and port."""

    host: str | None
    port: int
    path: str = ""


def _fail(value: str, why: str) -> TransportSyntaxError:
    return TransportSyntaxError(f"bad transport {value!r}: {why}")


def parse_host_nexthop(nexthop: str, default_port: int = LMTP_PORT) -> StoreHost:
    """An lmtp(8)/smtp(8) nexthop; raises ConfigError on bad syntax."""
    from mailhost.delivery.mx import parse_nexthop  # noqa: PLC0415 - DNS code only when used

    text = nexthop
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ConfigError("unix: needs a socket path")
        return StoreHost(None, 0, path)
    if text.startswith("inet:"):
        text = text[5:]
    if not text:
        raise ConfigError("no host")
    parsed = parse_nexthop(text, default_port)
    host = parsed.host
    if not host or any(c in host for c in "[]/") or (":" in host and not _is_ipv6(host)):
        raise ConfigError(f"bad host {host!r}")
    return StoreHost(host, parsed.port)


def _is_ipv6(text: str) -> bool:
    import ipaddress  # noqa: PLC0415

    try:
        return ipaddress.ip_address(text.removeprefix("ipv6:")).version == 6
    except ValueError:
        return False


def check_transport(value: str, *, need_nexthop: bool = False) -> str:
    """``value`` stripped, when it is a transport(5) result Postfix reads as
    meant: ``transport``, ``transport:nexthop`` or ``:nexthop``; a host
    nexthop for the lmtp/smtp/relay transports.  ``need_nexthop``: a store
    route, which must name both the transport and the store."""
    text = value.strip()
    if not text:
        raise _fail(value, "empty")
    if len(text) > MAX_LENGTH:
        raise _fail(value, f"longer than {MAX_LENGTH} characters")
    if any(c.isspace() or c == "," or not c.isprintable() for c in text):
        raise _fail(value, "white space, commas and control characters are not allowed")
    route = parse_route(text)
    if route.transport and not _SERVICE.fullmatch(route.transport):
        raise _fail(value, f"{route.transport!r} is not a master.cf service name")
    if need_nexthop and not (route.transport and route.nexthop):
        raise _fail(value, "a store is 'transport:nexthop', e.g. lmtp:inet:store-1.example:24")
    if route.nexthop and route.transport in HOST_TRANSPORTS:
        try:
            parse_host_nexthop(route.nexthop)
        except ConfigError as exc:
            raise _fail(value, f"nexthop {route.nexthop!r}: {exc}") from None
    return text


def store_host(route: Route, default_port: int = LMTP_PORT) -> StoreHost | None:
    """The store host of an lmtp/smtp route, None when the route names no
    host (another transport, an empty or unreadable nexthop)."""
    if route.transport not in HOST_TRANSPORTS or not route.nexthop:
        return None
    try:
        return parse_host_nexthop(route.nexthop, default_port)
    except ConfigError:
        return None


def parse_store(value: str) -> Route:
    """A checked store route (``lmtp:inet:host:24``) as transport and nexthop."""
    return parse_route(check_transport(value, need_nexthop=True))
