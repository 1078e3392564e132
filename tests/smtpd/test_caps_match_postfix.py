"""Resource caps of a real server process against what Postfix 3.7.11 did
(tests/smtpd/postfix_caps.json, recorded by record_postfix_caps.py):
smtpd_timeout per read or per request (smtpd_per_request_deadline,
smtpd_min_data_rate) against clients that trickle a byte a second, the
``after DATA (N bytes)`` lines, and a service at its maxproc that lets the
next client wait in the listen queue."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import trustme

from tests.smtpd.dialogues import Reader, normalize, smtpd_log_lines
from tests.smtpd.trickle import CASES, LISTENERS, lost_in_data, slow_client
from tests.support.server import ServerProcess, free_port, write_config

pytestmark = pytest.mark.postfix

RECORDED = json.loads((Path(__file__).with_name("postfix_caps.json")).read_text())


def serve(directory: Path, listeners: dict[str, str], extra: str = "") -> ServerProcess:
    """A server whose master.cf has one loopback smtpd per ``listeners``
    entry (name -> the fields from maxproc on: ``- smtpd -o ...``)."""
    ca = trustme.CA()
    write_config(directory, ca, {}, extra)
    ports = {name: free_port() for name in listeners}
    (directory / "master.cf").write_text(
        "".join(
            f"127.0.0.1:{ports[name]} inet n - n - {fields}\n" for name, fields in listeners.items()
        )
    )
    server = ServerProcess(directory, ports, ca, directory / "maillog")
    server.start()
    return server


@pytest.fixture(scope="module")
def trickled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, object]]]:
    """Every trickle case run once (in parallel: each takes seconds) against
    one server with the recorder's listeners."""
    directory = tmp_path_factory.mktemp("caps")
    server = serve(directory, {name: f"- smtpd {args}" for name, args in LISTENERS.items()})
    try:
        with ThreadPoolExecutor(len(CASES)) as pool:
            futures = {
                name: pool.submit(slow_client, server.ports[listener], before, slow, seconds)
                for name, (listener, before, slow, seconds) in CASES.items()
            }
            results = {name: future.result() for name, future in futures.items()}
        results["log"] = {"text": server.wait_log("disconnect from", count=len(CASES), timeout=30)}
        yield results
    finally:
        server.stop(signal.SIGKILL)


@pytest.mark.parametrize("case", list(CASES))
def test_trickling_client_matches_postfix(
    case: str, trickled: dict[str, dict[str, object]]
) -> None:
    expected = RECORDED["deadlines"][case]
    got = trickled[case]
    # The EHLO reply lists extensions mailhost does not offer (ETRN, DSN,
    # CHUNKING): compared elsewhere; every other reply is Postfix's.
    skip_ehlo = [r for r in expected["replies"] if not r[0].startswith("250-")]
    assert [r for r in got["replies"] if not r[0].startswith("250-")] == skip_ehlo
    assert [normalize(r) for r in got["after"]] == [normalize(r) for r in expected["after"]]
    assert got["answered"] == expected["answered"]
    assert abs(int(got["seconds"]) - int(expected["seconds"])) <= 1, got


def test_trickle_log_lines_match_postfix(trickled: dict[str, dict[str, object]]) -> None:
    log = str(trickled["log"]["text"])
    lines = smtpd_log_lines(log, "mailhost/smtpd")
    for case in CASES:
        for line in RECORDED["deadlines"][case]["log"]:
            if line.startswith(("timeout after", "lost connection after", "disconnect from")):
                assert line in lines, (case, line, lines)
    # The per-read client that finished its message was never timed out.
    assert sum(line.startswith("timeout after") for line in lines) == 2
    assert "Traceback" not in log


def test_lost_connection_in_data_counts_bytes_as_postfix(tmp_path: Path) -> None:
    server = serve(tmp_path, {"deadline": f"- smtpd {LISTENERS['deadline']}"})
    try:
        server.mark()
        lost_in_data(server.ports["deadline"])
        log = server.wait_log("disconnect from")
        lines = smtpd_log_lines(log, "mailhost/smtpd")
        expected = RECORDED["deadlines"]["data_lost_connection"]["log"]
        assert [x for x in lines if "after DATA" in x] == [x for x in expected if "after DATA" in x]
        assert lines[-1] == expected[-1]
    finally:
        server.stop(signal.SIGKILL)


def test_client_over_maxproc_waits_in_listen_queue_as_postfix(tmp_path: Path) -> None:
    recorded = RECORDED["process_limit"]
    server = serve(tmp_path, {"mx": "2 smtpd"})
    port = server.ports["mx"]
    try:
        other = socket.create_connection(("127.0.0.1", port), timeout=10)
        Reader(other).replies(1)
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert Reader(first).replies(1) == recorded["first_banner"]
        second = socket.create_connection(("127.0.0.1", port), timeout=10)
        waiting = Reader(second)
        assert waiting.replies(1, timeout=3) == recorded["second_banner_while_first_open"]
        first.sendall(b"QUIT\r\n")
        first.close()
        start = time.monotonic()
        assert waiting.replies(1, timeout=10) == recorded["second_banner_after_first_left"]
        assert time.monotonic() - start < recorded["second_waited_under_seconds"]
        for sock in (second, other):
            sock.sendall(b"QUIT\r\n")
            sock.close()
        log = server.wait_log("disconnect from", count=3)
        # A loopback-only service: master(8) does not warn (nor does mailhost).
        assert "process limit" not in log
    finally:
        server.stop(signal.SIGKILL)
