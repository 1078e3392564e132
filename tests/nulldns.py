"""A loopback DNS server that knows no names, for every test configuration
whose queue manager could reach the smtp transport (a bounce to
``sender@client.test``, a forward, a remote recipient): with
``mailhost_dns_servers`` pointing here each MX lookup is answered NXDOMAIN at
once, and no query ever leaves loopback (this machine's resolv.conf names a
non-loopback server).  Started once, on first use, for the whole session; its
thread is a daemon and ends with the interpreter."""

from __future__ import annotations

import functools

from tests.smtp.dnsserver import DnsServer, Zone


@functools.cache
def address() -> str:
    """``127.0.0.1:PORT`` of the server (started on the first call)."""
    return DnsServer(Zone()).start().address


def main_cf_line() -> str:
    """The main.cf line naming it."""
    return f"mailhost_dns_servers = {address()}\n"
