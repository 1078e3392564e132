"""rspamd (Debian's ``rspamd`` package) as a real milter peer on loopback:
only its proxy worker, in milter mode, scanning itself (``self_scan``), with
Debian's stock rules (/etc/rspamd), a throwaway directory for its database,
pid and log files, no Redis, and the session's null DNS server (every
lookup answered NXDOMAIN, nothing leaves loopback).  ``milter_headers``
adds X-Spamd-Result, X-Spam-Status and Authentication-Results.

``running(..., deployed=True)`` (the milter benchmark's choice, not the
tests') lays rspamd out as Debian's /etc/rspamd/rspamd.conf does instead:
the proxy with Debian's worker-proxy.inc (milter mode, one process,
forwarding to the normal workers: its ``upstream "local"``, pointed at their
port), the normal workers with worker-normal.inc (rspamd's default count),
the controller with worker-controller.inc, Debian's logging.inc (level
info), and ``redis`` (host:port) as the modules' Redis server if given.
Only the ports (free loopback ones), the directories and the DNS server
differ from a packaged installation."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests import nulldns
from tests.milter.opendkim import wait_port
from tests.support.net import free_port

#: Both layouts: Debian's common configuration, our options merged into
#: Debian's, the log in the run directory.
HEAD = """\
.include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}}
logging {{
    type = "file";
    filename = "$LOGDIR/rspamd.log";
"""

CONF = (
    HEAD
    + """\
    level = "notice";
}}
worker "rspamd_proxy" {{
    bind_socket = "127.0.0.1:{port}";
    milter = yes;
    timeout = 120s;
    count = 1;
    reject_message = "Spam message rejected";
    upstream "local" {{
        default = yes;
        self_scan = yes;
    }}
}}
"""
)

#: Merged into Debian's options.inc (its ``dns`` block has no nameserver): a
#: second ``dns`` block written beside the include would only make an array
#: of two, rspamd would read the first and ask resolv.conf's server instead.
#: Debian's ``filters`` without fuzzy_check: its servers (fuzzy1/2.rspamd.com)
#: are resolved with the system resolver when rspamd starts, a query that
#: would leave loopback.
OPTIONS = """\
filters = "chartable,dkim,regexp";
dns {{
    nameserver = ["{dns}"];
    timeout = 1s;
    retransmits = 1;
}}
"""

#: Debian's rspamd.conf, its sockets on free loopback ports.
DEPLOYED_CONF = (
    HEAD
    + """\
    .include "$CONFDIR/logging.inc"
}}
worker "normal" {{
    bind_socket = "127.0.0.1:{normal}";
    .include "$CONFDIR/worker-normal.inc"
}}
worker "controller" {{
    bind_socket = "127.0.0.1:{controller}";
    .include "$CONFDIR/worker-controller.inc"
}}
worker "rspamd_proxy" {{
    bind_socket = "127.0.0.1:{port}";
    .include "$CONFDIR/worker-proxy.inc"
    .include(priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/worker-proxy.inc"
}}
"""
)

#: Debian's proxy forwards to ``hosts = "localhost"`` (the normal workers'
#: default port, 11333): here, to where they listen.
DEPLOYED_PROXY = """\
upstream "local" {{
    hosts = "127.0.0.1:{normal}";
}}
"""

MILTER_HEADERS = """\
use = ["x-spamd-result", "x-spam-status", "authentication-results"];
skip_local = false;
skip_authenticated = false;
"""


@contextmanager
def running(directory: Path, *, deployed: bool = False, redis: str | None = None) -> Iterator[str]:
    """The milter endpoint (``inet:127.0.0.1:PORT``) while rspamd runs."""
    port = free_port()
    local = directory / "local.d"
    local.mkdir()
    ports = [port]
    if deployed:
        normal, controller = free_port(), free_port()
        ports.append(normal)
        conf = DEPLOYED_CONF.format(port=port, normal=normal, controller=controller)
        (local / "worker-proxy.inc").write_text(DEPLOYED_PROXY.format(normal=normal))
    else:
        conf = CONF.format(port=port)
    if redis is not None:
        (local / "redis.conf").write_text(f'servers = "{redis}";\n')
    (directory / "rspamd.conf").write_text(conf)
    (local / "options.inc").write_text(OPTIONS.format(dns=nulldns.address()))
    (local / "milter_headers.conf").write_text(MILTER_HEADERS)
    variables = [
        f"--var={name}={value}"
        for name, value in {
            "CONFDIR": "/etc/rspamd",
            "LOCAL_CONFDIR": directory,
            "DBDIR": directory,
            "RUNDIR": directory,
            "LOGDIR": directory,
        }.items()
    ]
    command = [
        "rspamd",
        "-f",
        "-i",
        "-u",
        "root",
        "-g",
        "root",
        "-c",
        str(directory / "rspamd.conf"),
    ]
    with (directory / "stdout").open("wb") as out:
        proc = subprocess.Popen([*command, *variables], stdout=out, stderr=out)
    try:
        for listening in ports:
            wait_port(listening, proc, timeout=120)
        yield f"inet:127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)
