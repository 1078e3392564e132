"""Defaults that depend on this host, computed the way Postfix computes them.

* ``myhostname``: the fully qualified name from gethostname(); a name without a
  dot gets ``.localdomain`` appended (postconf(5) myhostname);
* ``mydomain``: ``myhostname`` minus its first label, else ``localdomain``;
* ``mynetworks`` for the ``host`` style (compatibility level >= 2): the
  loopback networks plus this host's own addresses as /32 and /128.
"""

from __future__ import annotations

import functools
import ipaddress
import socket


@functools.cache
def default_myhostname() -> str:
    name = socket.gethostname().strip().lower() or "localhost"
    return name if "." in name else f"{name}.localdomain"


@functools.cache
def default_mydomain() -> str:
    _, dot, rest = default_myhostname().partition(".")
    return rest if dot and rest else "localdomain"


@functools.cache
def default_mynetworks() -> str:
    nets = ["127.0.0.0/8", "[::1]/128"]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        infos = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if addr.is_loopback:
            continue
        text = f"{addr}/32" if addr.version == 4 else f"[{addr}]/128"
        if text not in nets:
            nets.append(text)
    return " ".join(nets)
