"""A tiny authoritative DNS server on 127.0.0.1 for the smtp tests and the
Postfix recorder: real UDP and TCP on an ephemeral port, answers built with
dnspython's message API from an in-memory record set.

Names not in the set answer NXDOMAIN; names present without records of the
asked type answer NOERROR with an empty answer (NODATA); names listed in
``servfail`` answer SERVFAIL (the resolver's "try again").  Runs in its own
thread with its own event loop, so synchronous tests, the recorder and
subprocesses can all use it.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass
class Zone:
    """``records[(name, type)] = [rdata text, ...]``; names are absolute."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    servfail: set[str] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault((_abs(name), rdtype.upper()), []).extend(values)

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        q = query.question[0]
        name = q.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(q.rdtype)
        self.queries.append((name, rdtype))
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            values = self.records.get((name, rdtype), [])
            if values:
                rrset = dns.rrset.from_text_list(q.name, 60, "IN", rdtype, values)
                response.answer.append(rrset)
        return response.to_wire()


def _abs(name: str) -> str:
    return dns.name.from_text(name).to_text().lower()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.zone.answer(data), addr)


class DnsServer:
    """``with DnsServer(zone) as dns: ... dns.port``."""

    def __init__(self, zone: Zone, host: str = "127.0.0.1", port: int = 0) -> None:
        self.zone = zone
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._closers: list[asyncio.BaseTransport | asyncio.Server] = []

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                reply = self.zone.answer(await reader.readexactly(length))
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _start(self) -> None:
        # One port for both protocols: bind UDP first (port 0 = ephemeral),
        # then TCP on the same number.
        # An ephemeral UDP port's number may be taken for TCP: try another.
        wanted = self.port
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, wanted))
            port = udp.getsockname()[1]
            try:
                server = await asyncio.start_server(self._tcp, self.host, port)
            except OSError as exc:
                udp.close()
                if wanted != 0 or exc.errno != errno.EADDRINUSE:
                    raise
                continue
            break
        else:
            raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP")
        self.port = port
        transport, _ = await self._loop.create_datagram_endpoint(lambda: _Udp(self.zone), sock=udp)
        self._closers += [transport, server]

    def start(self) -> DnsServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            for c in self._closers:
                c.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """The ``mailhost_dns_servers`` value reaching this server."""
        return f"{self.host}:{self.port}"


def sample_zone(extra: Iterable[tuple[str, str, str]] = ()) -> Zone:
    """The domains the smtp tests and the recorder share (127.0.0.x only)."""
    zone = Zone()
    for name, rdtype, value in (
        ("mx.test", "MX", "10 mx1.mx.test."),
        ("mx.test", "MX", "20 mx2.mx.test."),
        ("mx1.mx.test", "A", "127.0.0.2"),
        ("mx2.mx.test", "A", "127.0.0.3"),
        ("equal.test", "MX", "10 e1.equal.test."),
        ("equal.test", "MX", "10 e2.equal.test."),
        ("equal.test", "MX", "10 e3.equal.test."),
        ("e1.equal.test", "A", "127.0.0.11"),
        ("e2.equal.test", "A", "127.0.0.12"),
        ("e3.equal.test", "A", "127.0.0.13"),
        ("nomx.test", "A", "127.0.0.4"),
        ("nullmx.test", "MX", "0 ."),
        ("nullmx.test", "A", "127.0.0.5"),
        ("self.test", "MX", "10 me.self.test."),
        ("me.self.test", "A", "127.0.0.1"),
        ("backup.test", "MX", "10 me.self.test."),
        ("backup.test", "MX", "20 mx2.mx.test."),
        ("nohost.test", "MX", "10 missing.nohost.test."),
        ("nohost.test", "TXT", '"a name that exists"'),
        ("relay.test", "A", "127.0.0.6"),
        ("relay.test", "MX", "10 mx1.mx.test."),
        *extra,
    ):
        zone.add(name, rdtype, value)
    zone.servfail.add(_abs("broken.test"))
    return zone


__all__ = ["DnsServer", "Zone", "sample_zone"]
