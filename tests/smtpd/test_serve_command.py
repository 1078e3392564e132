"""``mailhost serve`` start-up errors: one fatal line and exit status 1, never a
traceback (run_server is what the command runs once the master is built)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mailhost.cli.serve import run_server
from mailhost.master import Master, StageOverrides
from tests.smtpd.fakes import FileQueue, VirtualPolicy

STAGES = StageOverrides(recipients=VirtualPolicy, queue=FileQueue)


@pytest.fixture(autouse=True)
def restore_logging() -> object:
    root = logging.getLogger("mailhost")
    handlers, level, propagate = list(root.handlers), root.level, root.propagate
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)
    root.propagate = propagate


def configure(directory: Path, master: str) -> None:
    (directory / "main.cf").write_text(
        f"queue_directory = {directory}/queue\ninet_interfaces = 127.0.0.1\n"
    )
    (directory / "master.cf").write_text(master)


@pytest.mark.parametrize(
    ("master", "message"),
    [
        ("smtp inet n - n - smtpd\n", "master.cf: line 1: bad field count"),
        (
            "pickup unix n - n 60 1 pickup\n",
            "master.cf: no inet smtpd, lmtpd or quota-status service is defined",
        ),
        (
            "127.0.0.1:2525 inet n - n - - smtpd -o smtpd_timeout=soon\n",
            "parameter smtpd_timeout: bad time value or unit: soon",
        ),
        (
            "127.0.0.1:2525 inet n - n - - smtpd -o smtpd_milters=inet:nowhere\n",
            "milter inet:nowhere: bad endpoint (inet:host:port)",
        ),
        (
            "127.0.0.1:2525 inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n",
            "service 127.0.0.1:2525: smtpd_tls_wrappermode requires a usable certificate",
        ),
    ],
)
def test_startup_errors_are_one_fatal_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], master: str, message: str
) -> None:
    configure(tmp_path, master)
    assert run_server(Master(tmp_path, stages=STAGES)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    fatal = [line for line in err.splitlines() if ": fatal: " in line]
    assert len(fatal) == 1
    assert fatal[0].endswith(message)
    assert fatal[0].startswith("mailhost/smtpd[")


def test_port_in_use_is_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        configure(tmp_path, f"127.0.0.1:{port} inet n - n - - smtpd\n")
        assert run_server(Master(tmp_path, stages=STAGES)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].endswith(
        f"fatal: bind 127.0.0.1 port {port}: Address already in use"
    )
