"""The DNS restrictions compared with a real Postfix 3.7.11.

postfix_dns.json was recorded by record_postfix_dns.py from a Postfix
instance running dns_scenario.py's main.cf and listeners against the
scenario's zone on a loopback DNS server.  Here mailhost's restriction
stages are built from the very same main.cf (load_config, each listener's
``-o`` overrides, ``mailhost_dns_servers`` naming the same zone on its own
loopback server) and must give the same RCPT reply and log the same
warning, reject and permit lines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhost.config import Config, load_config
from mailhost.log import postfix_text
from mailhost.resolve import Resolver, ResolverSettings
from mailhost.smtpd_check.build import smtpd_checks
from mailhost.smtpd_check.state import CheckState, Client, PeerStatus, Where
from mailhost.tables.registry import TableRegistry
from tests.smtp.dnsserver import DnsServer
from tests.smtpd_check import dns_scenario as sc

RECORDED = json.loads((Path(__file__).parent / "postfix_dns.json").read_text())


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer(sc.peer_zone(sc.zone())) as server:
        yield server


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, dns: DnsServer) -> tuple[Path, Config]:
    directory = tmp_path_factory.mktemp("dns")
    sc.write_files(directory)
    text = sc.MAIN_CF.format(d=directory) + f"mailhost_dns_servers = {dns.address}\n"
    (directory / "main.cf").write_text(text)
    return directory, load_config(directory)


def client(case: sc.Case) -> Client:
    """What XCLIENT leaves: NAME sets both names when it is a name; the
    reverse name is otherwise the real connection's (localhost)."""
    if case.name.startswith("["):
        status = PeerStatus.TEMP if case.name == "[TEMPUNAVAIL]" else PeerStatus.PERM
        name, reverse, reverse_status = "unknown", "localhost", PeerStatus.OK
    else:
        name = reverse = case.name
        status = reverse_status = PeerStatus.OK
    if case.reverse_name is not None:
        reverse = case.reverse_name
    return Client(name, case.address, reverse, 0, status, reverse_status)


async def play(scenario: tuple[Path, Config], case: sc.Case) -> str:
    directory, base = scenario
    cfg = base.with_overrides(sc.overrides(case.listener, directory))
    registry = TableRegistry()
    checks = smtpd_checks(cfg, registry, Resolver(ResolverSettings.from_config(cfg, registry)))
    state = CheckState(
        client(case),
        server_address="127.0.0.1",
        helo=case.helo,
        sender=case.sender,
        where=Where.RCPT,
        protocol="ESMTP",
    )
    reply = await checks.rcpt(state, case.recipient)
    return str(reply) if reply is not None else "250 2.1.5 Ok"


def test_every_case_was_recorded() -> None:
    assert set(RECORDED["cases"]) == set(sc.CASES)


@pytest.mark.parametrize("name", sorted(sc.CASES))
async def test_dns_restriction_matches_postfix(
    name: str, scenario: tuple[Path, Config], caplog: pytest.LogCaptureFixture
) -> None:
    recorded = RECORDED["cases"][name]
    with caplog.at_level(logging.INFO, logger="mailhost"):
        reply = await play(scenario, sc.CASES[name])
    assert reply == recorded["rcpt"]
    logged = sc.engine_lines([postfix_text(r) for r in caplog.records])
    assert logged == sc.engine_lines(recorded["log"])
