"""pflogsumm reads mailhost's maillog lines (issue: "so existing log tools
(pflogsumm) read it").  syslog adds the date and host; the test adds them the
same way before handing the lines to pflogsumm --syslog-name=mailhost."""

from __future__ import annotations

import re
import shutil
import smtplib
import subprocess
from pathlib import Path

import pytest

from tests.support.server import ServerProcess


@pytest.mark.skipif(shutil.which("pflogsumm") is None, reason="pflogsumm is not installed")
def test_pflogsumm_counts_received_and_rejected(server: ServerProcess, tmp_path: Path) -> None:
    server.mark()
    with smtplib.SMTP("127.0.0.1", server.ports["mx"]) as client:
        client.ehlo("client.test")
        for subject in ("one", "two"):
            client.mail("tester@client.test")
            client.rcpt("bob@example.com")
            assert client.data(f"Subject: {subject}\r\n\r\nbody\r\n".encode())[0] == 250
        client.mail("tester@client.test")
        assert client.rcpt("nobody@example.com")[0] == 550
    text = server.wait_log("disconnect from")
    syslog = tmp_path / "mail.log"
    syslog.write_text("".join(f"Nov 28 17:00:00 mx {line}\n" for line in text.splitlines()))
    totals, report = pflogsumm(syslog)
    assert totals["received"] == 2
    assert totals["rejected"] == 1
    assert totals["senders"] == 1
    assert "550 5.1.1" in report or "User unknown" in report


def pflogsumm(maillog: Path) -> tuple[dict[str, int], str]:
    """pflogsumm's totals (``received``, ``delivered``, ...) of a maillog of
    mailhost's lines, and its whole report."""
    run = subprocess.run(
        ["pflogsumm", "--syslog-name=mailhost", str(maillog)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    totals = {
        m.group(2): int(m.group(1))
        for m in re.finditer(r"^\s+(\d+)\s+(\w[\w ]*?)(?: \(|$)", run.stdout, re.M)
    }
    return totals, run.stdout
