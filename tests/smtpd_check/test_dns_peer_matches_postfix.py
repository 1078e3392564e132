"""End to end: a running ``mailhost serve`` looks up its clients' names
(smtpd_peer.c's name, reverse name and their statuses) through the loopback
DNS server of dns_scenario.py, and answers and logs as Postfix 3.7.11 did
for the same clients (postfix_dns.json, "peers"): clients connect from
127.0.0.20-25, whose PTR and A records agree, disagree, fail or are missing.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator

import pytest

from tests.smtp.dnsserver import DnsServer
from tests.smtpd_check import dns_scenario as sc
from tests.smtpd_check.test_dns_restrictions_match_postfix import RECORDED
from tests.support.server import QMGR_LINE, ServerProcess, free_port, serve_cli

LISTENERS = list(sc.PEER_LISTENERS)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, dict[str, int]]]:
    directory = tmp_path_factory.mktemp("peer")
    with DnsServer(sc.peer_zone(sc.zone())) as dns:
        sc.write_files(directory)
        first, second = LISTENERS
        (directory / "main.cf").write_text(
            sc.MAIN_CF.format(d=directory)
            + f"mailhost_dns_servers = {dns.address}\n"
            + f"queue_directory = {directory / 'queue'}\n"
            + "smtpd_error_sleep_time = 0\n"
            + "".join(f"{k} = {v}\n" for k, v in sc.PEER_LISTENERS[first].items())
        )
        port = free_port()
        options = " ".join(f"-o {k}={v}" for k, v in sc.PEER_LISTENERS[second].items())
        listener = f"127.0.0.1:{port} inet n - n - - smtpd {options}\n"
        process, first_port = serve_cli(directory, listener + QMGR_LINE)
        try:
            yield process, {first: first_port, second: port}
        finally:
            process.stop()


def session(port: int, address: str) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(address, 0)) as smtp:
        smtp.ehlo("helo.exists.test")
        code, message = smtp.docmd("MAIL", "FROM:<sender@exists.test>")
        assert code == 250, message
        code, message = smtp.docmd("RCPT", "TO:<user@example.com>")
        return f"{code} {message.decode()}"


def compared(lines: list[str]) -> list[str]:
    return [x for x in lines if x.startswith(("warning: ", "NOQUEUE: ", "connect from "))]


@pytest.mark.parametrize("address", sorted(sc.PEERS))
@pytest.mark.parametrize("listener", LISTENERS)
def test_client_name_lookup_matches_postfix(
    listener: str, address: str, server: tuple[ServerProcess, dict[str, int]]
) -> None:
    process, ports = server
    recorded = RECORDED["peers"][f"{listener} {address}"]
    process.mark()
    reply = session(ports[listener], address)
    text = process.wait_log(f"[{address}] ehlo=")
    lines = [m.group(1) for m in re.finditer(r"smtpd\[\d+\]: (.*)", text)]
    assert reply == recorded["rcpt"]
    assert compared(lines) == compared(recorded["log"])


def test_every_peer_was_recorded() -> None:
    assert {f"{x} {a}" for x in LISTENERS for a in sc.PEERS} == set(RECORDED["peers"])
