"""The smtp/lmtp transports against the peers the Postfix recorder used,
compared line by line with what Postfix 3.7 logged
(tests/smtp/postfix_smtp.json, tests/smtp/record_postfix_smtp.py).

The recorder ran in its own network namespace with the peers on port 25 (24
for LMTP, 2525 for one relay); here they all share one ephemeral port, given
to mailhost as smtp_tcp_port and in the transport_maps nexthops, and the
recorded port numbers are mapped to it before comparing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.qmgr.helpers import Site, captured_log
from tests.smtp.conftest import Sinks, free_port
from tests.smtp.dnsserver import DnsServer
from tests.smtp.record_postfix_smtp import CASES, SINKS

RECORDED = json.loads((Path(__file__).parent / "postfix_smtp.json").read_text())

pytestmark = pytest.mark.postfix


@pytest.fixture(scope="module")
def peers(
    tmp_path_factory: pytest.TempPathFactory, dns_server: DnsServer
) -> Iterator[tuple[Sinks, Path]]:
    sockdir = tmp_path_factory.mktemp("lmtp")
    sinks = Sinks(free_port("127.0.0.2"))
    try:
        for where, options in SINKS.items():
            sinks.start(where, *options)
        sinks.start(f"unix:{sockdir}/lmtp.sock", "-L")
        yield sinks, sockdir
    finally:
        sinks.stop()


def site_for(tmp_path: Path, dns_server: DnsServer, port: int, sockdir: Path) -> Site:
    transport = tmp_path / "transport"
    transport.write_text(
        f"relayed.test smtp:[127.0.0.10]:{port}\n"
        "viamx.test smtp:relay.test\n"
        "viaa.test smtp:[relay.test]\n"
        f"lmtpu.test lmtp:unix:{sockdir}/lmtp.sock\n"
        f"lmtpi.test lmtp:inet:127.0.0.9:{port}\n"
        f"lmtprej.test lmtp:inet:127.0.0.17:{port}\n"
    )
    return Site(
        tmp_path,
        extra=(
            f"mailhost_dns_servers = {dns_server.address}\n"
            f"smtp_tcp_port = {port}\n"
            f"transport_maps = texthash:{transport}\n"
            "smtp_connect_timeout = 3s\n"
            "smtp_connection_cache_time_limit = 0s\n"
            "lmtp_connection_cache_time_limit = 0s\n"
        ),
    )


def normalize(line: str, port: int, sockdir: Path) -> str:
    text = line.split(": ", 1)[1]  # drop the "DAEMON: " of captured_log
    daemon = line.split(":", 1)[0]
    text = re.sub(r"\b[0-9A-F]{10,12}\b", "QID", text)
    text = re.sub(r"delay=[\d.]+, delays=[\d./]+", "delay=D, delays=D", text)
    text = text.replace(f":{port}", ":PORT").replace(f"[{sockdir}/", "[DIR/")
    return f"postfix/{daemon}[PID]: {text}"


def expected(rcpt: str) -> list[str]:
    return [re.sub(r":(25|24|2525)\b", ":PORT", line) for line in RECORDED[rcpt]["lines"]]


@pytest.mark.parametrize("rcpt", list(CASES), ids=lambda r: r.split("@")[1])
async def test_outbound_case_matches_postfix(
    rcpt: str, tmp_path: Path, dns_server: DnsServer, peers: tuple[Sinks, Path]
) -> None:
    sinks, sockdir = peers
    site = site_for(tmp_path, dns_server, sinks.port, sockdir)
    manager = site.manager()
    qid = await site.enqueue(rcpt, sender="sender@example.com")
    with captured_log() as log:
        await manager.run_once()
    domain = rcpt.split("@")[1]
    lines = [
        normalize(x, sinks.port, sockdir)
        for x in log.lines
        if x.startswith(("smtp:", "lmtp:", "relay:"))
        and (f"{qid}: " in x or ": connect to " in x)
        and "removed" not in x
    ]
    assert lines == expected(rcpt), RECORDED[rcpt]["case"]
    assert domain
