"""End to end: a running ``mailhost serve`` looks up its clients' names
(smtpd_peer.c's name, reverse name and their statuses) through the loopback
DNS server of dns_scenario.py, and answers and logs as Postfix 3.7.11 did
for the same clients (postfix_dns.json, "peers"): clients connect from
127.0.0.20-25, whose PTR and A records agree, disagree, fail or are missing.
A third listener rejects a client on a DNS list over SMTP, as the recorded
``rbl_listed_with_txt`` case.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator

import pytest
import trustme

from tests.smtp.dnsserver import DnsServer
from tests.smtpd_check import dns_scenario as sc
from tests.smtpd_check.test_dns_restrictions_match_postfix import RECORDED
from tests.support.server import QMGR_LINE, ServerProcess, free_port

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
        ports: list[int] = []
        while len(ports) < 3:  # free_port() may hand out one port twice
            if (port := free_port()) not in ports:
                ports.append(port)
        options = " ".join(f"-o {k}={v}" for k, v in sc.PEER_LISTENERS[second].items())
        (directory / "master.cf").write_text(
            f"127.0.0.1:{ports[0]} inet n - n - - smtpd\n"
            f"127.0.0.1:{ports[1]} inet n - n - - smtpd {options}\n"
            f"127.0.0.1:{ports[2]} inet n - n - - smtpd"
            " -o { smtpd_recipient_restrictions = reject_rbl_client bl.test }\n" + QMGR_LINE
        )
        process = ServerProcess(directory, {}, trustme.CA(), directory / "maillog")
        process.queue_kind = "cli"
        process.start()
        try:
            yield process, {first: ports[0], second: ports[1], "rbl": ports[2]}
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


def test_dns_list_over_smtp_matches_postfix(server: tuple[ServerProcess, dict[str, int]]) -> None:
    process, ports = server
    recorded = RECORDED["cases"]["rbl_listed_with_txt"]
    process.mark()
    reply = session(ports["rbl"], "127.0.0.2")
    text = process.wait_log("[127.0.0.2] ehlo=")
    lines = [m.group(1) for m in re.finditer(r"smtpd\[\d+\]: (.*)", text)]
    assert reply == recorded["rcpt"]
    assert sc.engine_lines(lines) == sc.engine_lines(recorded["log"])
