"""Every restriction case of scenario.py gets the replies and the smtpd log
lines Postfix 3.7.11 gave with the same main.cf, tables and master.cf
listeners (postfix_restrictions.json, recorded by
record_postfix_restrictions.py), from ``mailhost serve`` itself on loopback.

Log lines are compared after the ``smtpd[PID]: `` tag, queue ids made ``QID``
and the table directory (a different temporary directory on each side) made
``DIR``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests import nulldns
from tests.smtpd_check.scenario import (
    CASES,
    HASH_TABLES,
    LISTENERS,
    MAIN_CF,
    listener_args,
    run_dialogue,
    smtpd_log_lines,
    write_tables,
)
from tests.support.net import free_port
from tests.support.server import QMGR_LINE, ROOT, ServerProcess

RECORDED = json.loads((Path(__file__).parent / "postfix_restrictions.json").read_text())
_RECORDED_DIR = "/tmp/pfx-restrictions-"


def _dir_free(lines: list[str], directory: str) -> list[str]:
    """``directory`` (and the recorder's temporary directory) made ``DIR``."""
    out = []
    for line in lines:
        text = line.replace(directory, "DIR") if directory else line
        start = text.find(_RECORDED_DIR)
        while start >= 0:
            end = text.index("/", start + len(_RECORDED_DIR))
            text = text[:start] + "DIR" + text[end:]
            start = text.find(_RECORDED_DIR)
        out.append(text)
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("restrictions")
    write_tables(directory)
    (directory / "main.cf").write_text(
        MAIN_CF.format(dir=directory)
        + "mail_name = Postfix\n"
        + f"queue_directory = {directory / 'queue'}\n"
        + nulldns.main_cf_line()
    )
    for name in HASH_TABLES:
        subprocess.run(
            [sys.executable, "-m", "mailhost", "postmap", "-c", str(directory), f"hash:{directory / name}"],
            check=True,
            cwd=ROOT,
        )  # fmt: skip
    ports = {name: free_port() for name in LISTENERS}
    lines = [
        f"127.0.0.1:{port} inet n - n - - smtpd {listener_args(name, directory)}".rstrip()
        for name, port in ports.items()
    ]
    (directory / "master.cf").write_text("\n".join(lines) + "\n" + QMGR_LINE)
    proc = ServerProcess(directory, ports, trustme.CA(), directory / "maillog")
    proc.queue_kind = "cli"
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_every_case_was_recorded() -> None:
    assert set(RECORDED) == set(CASES)


@pytest.mark.postfix
@pytest.mark.parametrize("name", list(CASES))
def test_restriction_case_matches_postfix(server: ServerProcess, name: str) -> None:
    case = CASES[name]
    server.mark()
    replies = run_dialogue(server.ports[case.listener], case.client, case.steps)
    assert replies == RECORDED[name]["replies"]
    text = server.wait_log("disconnect from", timeout=15)
    got = _dir_free(smtpd_log_lines(text, "mailhost/smtpd"), str(server.directory))
    assert got == _dir_free(RECORDED[name]["log"], "")
