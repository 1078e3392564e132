"""The ``hosts`` setting of mysql and pgsql query files.

mysql_table(5): ``unix:/path/to/socket``, ``inet:host``, ``inet:host:port``,
``host``, ``host:port``; ``localhost`` (any case, also as ``inet:localhost``)
means the client library's default UNIX socket.
pgsql_table(5): ``postgresql://...`` connection URIs; ``unix:/dir`` or anything
starting with ``/`` is a UNIX socket directory; ``inet:host:port``,
``host:port``, ``host``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MYSQL_DEFAULT_SOCKET = "/run/mysqld/mysqld.sock"
MYSQL_DEFAULT_PORT = 3306
PGSQL_DEFAULT_PORT = 5432


@dataclass
class Host:
    text: str  # as written, for log lines
    kind: str  # "unix", "inet" or "uri"
    address: str  # socket path/dir, host name, or URI
    port: int = 0
    down_until: float = 0.0

    @property
    def shown(self) -> str:
        """The host as written, without a URI's password (status, metrics)."""
        if self.kind != "uri":
            return self.text
        text = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", self.text)
        return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", text)

    @property
    def rank(self) -> int:
        """Postfix's preference: UNIX sockets, then TCP, then URIs."""
        return {"unix": 0, "inet": 1, "uri": 2}[self.kind]


def host_port(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[ipv6]`` or ``[ipv6]:port``; a port that is
    not a number is the default."""
    if text.startswith("["):  # [ipv6]:port
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    return host, int(port) if port.isdigit() else default_port


def parse_mysql_host(text: str) -> Host:
    if text.startswith("unix:"):
        return Host(text, "unix", text[5:])
    body = text[5:] if text.startswith("inet:") else text
    host, port = host_port(body, MYSQL_DEFAULT_PORT)
    if host.lower() == "localhost":
        return Host(text, "unix", MYSQL_DEFAULT_SOCKET)
    return Host(text, "inet", host, port)


def parse_pgsql_host(text: str) -> Host:
    if text.startswith(("postgresql://", "postgres://")):
        return Host(text, "uri", text)
    if text.startswith("unix:"):
        return Host(text, "unix", text[5:])
    if text.startswith("/"):
        return Host(text, "unix", text)
    body = text[5:] if text.startswith("inet:") else text
    host, port = host_port(body, PGSQL_DEFAULT_PORT)
    return Host(text, "inet", host, port)
