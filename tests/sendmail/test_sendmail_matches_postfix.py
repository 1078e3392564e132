"""``mailhost sendmail`` + pickup + cleanup against what Postfix 3.7.11's
sendmail, pickup and cleanup made of the same submissions
(postfix_sendmail.json, recorded by record_postfix_sendmail.py from real
queue files with ``postcat``): exit status, stderr, envelope sender,
(original, final) recipients, every header cleanup wrote, the body and the
pickup/cleanup log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mailhost.cli.sendmail import gecos_name
from tests.sendmail.helpers import (
    log_lines,
    normal,
    pick_all,
    read_incoming,
    submit,
    write_config,
)
from tests.sendmail.scenario import BS_CASES, CASES, ERROR_CASES, Case

RECORDED: dict[str, Any] = json.loads((Path(__file__).parent / "postfix_sendmail.json").read_text())


def _expected(case: Case) -> dict[str, Any]:
    expected = dict(RECORDED[case.name])
    if "sendmail: warning:" in expected.get("stderr", ""):
        # Postfix's sendmail also logs its warning to the maillog; ours goes
        # to stderr only.
        expected["maillog"] = [
            line for line in expected["maillog"] if not line.startswith("sendmail:")
        ]
    return expected


def _skip_unless_recorded_user(case: Case) -> None:
    """Recorded as root (uid 0, GECOS "root"); the user running the tests
    shows in the Received: header, the sender and the full name."""
    if os.getuid() != 0 or gecos_name(pwd.getpwuid(0)) != "root":
        pytest.skip("recorded as root; run as root to compare")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_submission_matches_postfix(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _skip_unless_recorded_user(case)
    expected = _expected(case)
    config = write_config(tmp_path / "etc")
    result = submit(config, case.args, case.stdin, monkeypatch, case.env)
    assert (result.status, result.stderr) == (expected["exit"], expected["stderr"])
    caplog.set_level(logging.INFO, logger="mailhost")
    (queue_id,) = asyncio.run(pick_all(config))
    qf = asyncio.run(read_incoming(config, queue_id))
    assert qf.envelope.sender == expected["sender"]
    assert qf.envelope.full_name == expected["fullname"]
    assert [[r.original, r.address] for r in qf.envelope.recipients] == expected["recipients"]
    lines = [line.decode() for line in qf.lines()]
    blank = lines.index("")
    assert [normal(line, queue_id) for line in lines[:blank]] == expected["headers"]
    assert lines[blank + 1 :] == expected["body"]
    assert log_lines(caplog, queue_id) == expected["maillog"]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c.name for c in ERROR_CASES])
def test_refused_submission_matches_postfix(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _skip_unless_recorded_user(case)
    expected = RECORDED[case.name]
    config = write_config(tmp_path / "etc")
    result = submit(config, case.args, case.stdin, monkeypatch, case.env)
    assert (result.status, result.stderr) == (expected["exit"], expected["stderr"])
    assert not list((config / "queue").glob("*/*"))


#: EHLO keywords Postfix offers that mailhost's smtpd does not (yet).
NOT_OFFERED = ("250-ETRN", "250-DSN", "250 CHUNKING", "250-CHUNKING")


def _transcript(text: str, maildrop_id: str) -> list[str]:
    if maildrop_id:
        text = text.replace(maildrop_id, "{MAILDROP_QID}")
    lines = text.splitlines()
    kept = [line for line in lines if line not in NOT_OFFERED]
    # The last EHLO line is "250 KEYWORD"; with CHUNKING gone it is SMTPUTF8.
    return [line.replace("250-SMTPUTF8", "250 SMTPUTF8") for line in kept]


@pytest.mark.parametrize("case", BS_CASES, ids=[c.name for c in BS_CASES])
def test_bs_session_matches_postfix(
    case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """sendmail -bs: the replies (less the EHLO keywords mailhost does not
    offer), then pickup's and smtpd's Received: headers and cleanup's."""
    _skip_unless_recorded_user(case)
    expected = RECORDED[case.name]
    config = write_config(tmp_path / "etc")
    done = subprocess.run(
        [sys.executable, "-m", "mailhost", "sendmail", "-C", str(config), *case.args],
        input=case.stdin.encode(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stderr.decode()) == (expected["exit"], expected["stderr"])
    (dropped,) = (config / "queue" / "maildrop").iterdir()
    assert _transcript(done.stdout.decode(), dropped.name) == _transcript(expected["stdout"], "")
    caplog.set_level(logging.INFO, logger="mailhost")
    (queue_id,) = asyncio.run(pick_all(config))
    qf = asyncio.run(read_incoming(config, queue_id))
    assert qf.envelope.sender == expected["sender"]
    assert qf.envelope.full_name == expected["fullname"]
    assert [[r.original, r.address] for r in qf.envelope.recipients] == expected["recipients"]
    lines = [line.decode() for line in qf.lines()]
    blank = lines.index("")
    headers = [normal(line, queue_id).replace(dropped.name, "{MAILDROP_QID}") for line in lines]
    assert headers[:blank] == expected["headers"]
    assert lines[blank + 1 :] == expected["body"]
    assert log_lines(caplog, queue_id) == expected["maillog"]
