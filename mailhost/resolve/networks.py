"""Network lists: ``mynetworks`` and friends (postconf(5) mynetworks).

Elements, tried left to right, first match wins: ``192.0.2.0/24``,
``192.0.2.1``, ``[2001:db8::]/32`` / ``[::1]`` (IPv6 in brackets, as Postfix
writes it), ``!element`` (a match means "not in the list"), ``/file/name``
(its lines are more elements) and ``type:table`` (matches when the client IP
is a key of the table; a table error is a temporary failure).  An IPv4-mapped
IPv6 client (``::ffff:192.0.2.1``) is compared as IPv4.  Host names are not
supported (Postfix would need DNS); they are logged and never match.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from mailhost.config.lists import split_list
from mailhost.log import logger
from mailhost.tables.base import Table
from mailhost.tables.registry import TableRegistry

log = logger("smtpd")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class NetElement:
    negated: bool
    network: Network | None = None
    table: Table | None = None


def parse_network(text: str) -> Network:
    """``[2001:db8::]/32`` → IPv6Network; raises ValueError."""
    body = text
    if body.startswith("["):
        inner, sep, rest = body[1:].partition("]")
        if not sep or (rest and not rest.startswith("/")):
            raise ValueError(text)
        body = inner + rest
    return ipaddress.ip_network(body, strict=False)


def _elements(
    parameter: str, value: str, registry: TableRegistry | None, depth: int
) -> list[NetElement]:
    result: list[NetElement] = []
    for item in split_list(value):
        negated = item.startswith("!")
        body = item[1:] if negated else item
        if body.startswith("/") and depth < 10:
            text = Path(body).read_text(encoding="utf-8")
            lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
            nested = _elements(parameter, "\n".join(lines), registry, depth + 1)
            result += [NetElement(e.negated != negated, e.network, e.table) for e in nested]
        elif ":" in body and not body.startswith("[") and registry is not None:
            kind = body.partition(":")[0]
            if kind.isalpha():
                result.append(NetElement(negated, table=registry.open(body)))
                continue
            result.append(NetElement(negated, network=parse_network(body)))
        else:
            try:
                result.append(NetElement(negated, network=parse_network(body)))
            except ValueError:
                log.warning("%s: unsupported network list element; ignoring %s", parameter, item)
    return result


@functools.lru_cache(maxsize=4096)
def client_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client address as an IP (IPv4-mapped IPv6 as IPv4), None when it
    is not one; parsed once per address, not once per list checked."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


#: How many client addresses a list's answers are kept for.
MATCH_MEMO = 4096


class NetworkList:
    def __init__(self, parameter: str, elements: list[NetElement]) -> None:
        self.parameter = parameter
        self.elements = elements
        #: Answers by client address when the list names no table (networks
        #: only: the answer cannot change); asked at every connection
        #: (smtpd_client_event_limit_exceptions) and stage.
        self._known: dict[str, bool] | None = {} if all(e.table is None for e in elements) else None

    @classmethod
    def parse(
        cls, parameter: str, value: str, registry: TableRegistry | None = None
    ) -> NetworkList:
        return cls(parameter, _elements(parameter, value, registry, 0))

    async def match(self, address: str) -> bool:
        """True when the client IP is in the list; raises TableTempFail."""
        known = self._known
        if known is None:
            return await self._match(address)
        hit = known.get(address)
        if hit is None:
            if len(known) >= MATCH_MEMO:
                known.clear()
            hit = known[address] = await self._match(address)
        return hit

    async def _match(self, address: str) -> bool:
        ip = client_ip(address)
        if ip is None:
            return False
        for element in self.elements:
            if element.table is not None:
                hit = await element.table.lookup(str(ip)) is not None
            else:
                net = element.network
                hit = net is not None and net.version == ip.version and ip in net
            if hit:
                return not element.negated
        return False
