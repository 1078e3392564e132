"""Every reply and every limit log line of the scenarios in anvil_cases.py,
and anvil's statistics lines, equal what Postfix 3.7.11 produced with the
same main.cf and master.cf listeners (postfix_anvil.json, recorded by
record_postfix_anvil.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.smtpd.anvil_cases import SCENARIOS, STATISTICS, limit_log_lines, run_scenario
from tests.smtpd.record_postfix_anvil import STATISTICS_TIME, statistics_lines
from tests.support.server import ServerProcess, free_port, write_config

RECORDED = json.loads((Path(__file__).parent / "postfix_anvil.json").read_text())


def start(directory: Path, listeners: dict[str, str], extra: str = "") -> ServerProcess:
    """A server with one smtpd listener per ``listeners`` item (name: the
    master.cf arguments after ``smtpd``)."""
    ca = trustme.CA()
    write_config(directory, ca, {}, extra)
    ports = {name: free_port() for name in listeners}
    with (directory / "master.cf").open("a") as master:
        for name, args in listeners.items():
            master.write(f"127.0.0.1:{ports[name]} inet n - n - - smtpd {args}\n")
    server = ServerProcess(directory, ports, ca, directory / "maillog")
    server.start()
    return server


@pytest.fixture(scope="module")
def anvil_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start(
        tmp_path_factory.mktemp("anvil"), {name: args for name, (args, _) in SCENARIOS.items()}
    )
    yield server
    server.stop()


@pytest.mark.postfix
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_limit_scenario_matches_postfix(anvil_server: ServerProcess, name: str) -> None:
    actions = SCENARIOS[name][1]
    anvil_server.mark()
    replies = run_scenario(anvil_server.ports[name], actions)
    assert replies == RECORDED[name]["replies"]
    connections = len({index for index, _, _ in actions})
    text = anvil_server.wait_log("disconnect from", count=connections)
    assert limit_log_lines(text, "mailhost/smtpd") == RECORDED[name]["log"]


@pytest.mark.postfix
def test_anvil_statistics_match_postfix(tmp_path: Path) -> None:
    server = start(
        tmp_path,
        {"statistics": STATISTICS[0]},
        f"anvil_status_update_time = {STATISTICS_TIME}\n",
    )
    try:
        run_scenario(server.ports["statistics"], STATISTICS[1])
        text = server.wait_log("statistics: max cache size")
    finally:
        server.stop()
    lines = statistics_lines(text, "mailhost/anvil", server.ports)
    assert lines == RECORDED["anvil_statistics"]
