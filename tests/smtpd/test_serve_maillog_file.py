"""``mailhost serve`` with ``maillog_file`` set: its lines go to that file,
laid out as Postfix 3.7.11's postlogd writes them, a value outside
``maillog_file_prefixes`` stops the start with Postfix's text, and SIGHUP
opens the file again by name (after logrotate renamed it)."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailhost.config import load_config
from mailhost.errors import ConfigError
from mailhost.log import DaemonFormatter, MaillogHandler
from mailhost.maillog import maillog_path
from tests.smtpd.test_pflogsumm import pflogsumm
from tests.support.server import ROOT, serve_cli

#: ``Dec 07 16:37:10 mx postfix/postlog[1759]: text``: a line of Postfix
#: 3.7.11's maillog_file (recorded with tests/support/postfix_lab.py): the
#: day of the month with two digits, the host name's first label.
STAMPED = re.compile(r"^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d mx mailhost/[a-z]+\[\d+\]: ")


def maillog_cf(directory: Path, value: Path | str, prefixes: str | None = None) -> str:
    text = (
        f"queue_directory = {directory}/queue\n"
        "myhostname = mx.example.com\n"
        "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n"
        "mydestination =\nalias_maps =\nalias_database =\n"
        "virtual_mailbox_domains = example.com\n"
        f"virtual_mailbox_base = {directory}/vmail\n"
        "virtual_mailbox_maps = inline:{bob@example.com=example.com/bob/}\n"
        "virtual_uid_maps = static:65534\nvirtual_gid_maps = static:65534\n"
        f"maillog_file = {value}\n"
    )
    if prefixes is not None:
        text += f"maillog_file_prefixes = {prefixes}\n"
    return text


def serve_once(directory: Path) -> subprocess.CompletedProcess[str]:
    """``mailhost serve`` expected to stop at start-up."""
    (directory / "master.cf").write_text("127.0.0.1:0 inet n - n - - smtpd\n")
    return subprocess.run(
        [sys.executable, "-m", "mailhost", "serve", "-c", str(directory)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_text(path: Path, text: str, count: int = 1) -> None:
    """Until ``path`` exists and holds ``text`` ``count`` times."""
    deadline = time.monotonic() + 10
    while not path.exists() or path.read_text().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not in {path}"
        time.sleep(0.02)


def session(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo("client.test")
        client.mail("sender@client.test")
        assert client.rcpt("bob@example.com")[0] == 250
        assert client.data(b"Subject: maillog\r\n\r\nhello\r\n")[0] == 250


def test_lines_go_to_maillog_file_stamped_as_postlogd_writes_them(tmp_path: Path) -> None:
    # serve_cli's log_path is maillog, which also takes the process's stdout
    # and stderr: every line in it carrying the stamp shows that none came
    # through stderr, which has none.
    (tmp_path / "main.cf").write_text(maillog_cf(tmp_path, tmp_path / "maillog", str(tmp_path)))
    server, port = serve_cli(tmp_path)
    try:
        session(port)
        text = server.wait_log("status=sent")
        server.wait_log("disconnect from localhost[127.0.0.1]")
    finally:
        assert server.stop() == 0
    lines = (tmp_path / "maillog").read_text().splitlines()
    assert "connect from localhost[127.0.0.1]" in text
    unstamped = [line for line in lines if not STAMPED.match(line)]
    assert unstamped == []
    assert re.search(r"mailhost/virtual\[\d+\]: [0-9A-F]+: to=<bob@example.com>", "\n".join(lines))


@pytest.mark.skipif(shutil.which("pflogsumm") is None, reason="pflogsumm is not installed")
def test_pflogsumm_reads_the_maillog_file_as_written(tmp_path: Path) -> None:
    # No stamps added by the test (tests/smtpd/test_pflogsumm.py adds them to
    # stderr's lines): the file is already what pflogsumm reads.
    (tmp_path / "main.cf").write_text(maillog_cf(tmp_path, tmp_path / "maillog", str(tmp_path)))
    server, port = serve_cli(tmp_path)
    try:
        session(port)
        session(port)
        server.wait_log("status=sent", count=2)
    finally:
        assert server.stop() == 0
    totals, _ = pflogsumm(tmp_path / "maillog")
    assert totals["received"] == 2
    assert totals["delivered"] == 2


def test_value_outside_maillog_file_prefixes_is_fatal_with_postfix_text(tmp_path: Path) -> None:
    # The text of Postfix 3.7.11 (libpostfix-global: "%s value '%s' does not
    # match any prefix in %s"); the default prefixes are "/var, /dev/stdout"
    # (postconf -d), and pytest's directory is under /tmp.
    path = tmp_path / "maillog"
    (tmp_path / "main.cf").write_text(maillog_cf(tmp_path, path))
    done = serve_once(tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        f"mailhost: fatal: maillog_file value '{path}' does not match any prefix"
        " in maillog_file_prefixes\n"
    )
    assert not path.exists()


def test_maillog_file_that_cannot_be_opened_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "maillog"
    (tmp_path / "main.cf").write_text(maillog_cf(tmp_path, path, str(tmp_path)))
    done = serve_once(tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        f"mailhost: fatal: open maillog_file {path}: No such file or directory\n"
    )


def test_sighup_opens_maillog_file_again_after_rotation(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(maillog_cf(tmp_path, tmp_path / "maillog", str(tmp_path)))
    server, port = serve_cli(tmp_path)
    try:
        os.rename(tmp_path / "maillog", tmp_path / "maillog.1")
        server.mark()  # the new file starts empty
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        wait_text(tmp_path / "maillog", "reload -- configuration", server.processes())
        session(port)
        new = server.wait_log("status=sent")
    finally:
        assert server.stop() == 0
    assert "connect from localhost[127.0.0.1]" in new
    assert "status=sent" not in (tmp_path / "maillog.1").read_text()


def test_reload_with_a_bad_maillog_file_keeps_the_file_in_use(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(maillog_cf(tmp_path, tmp_path / "maillog", str(tmp_path)))
    server, port = serve_cli(tmp_path)
    try:
        (tmp_path / "main.cf").write_text(
            maillog_cf(tmp_path, tmp_path / "missing" / "maillog", str(tmp_path))
        )
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        text = server.wait_log("reload -- configuration", count=server.processes())
        session(port)
        server.wait_log("status=sent")
    finally:
        assert server.stop() == 0
    assert (
        f"error: open maillog_file {tmp_path}/missing/maillog: No such file or directory;"
        f" logging on to {tmp_path}/maillog" in text
    )


def test_a_reload_that_sets_maillog_file_moves_the_lines_there(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(
        maillog_cf(tmp_path, "", str(tmp_path)).replace("maillog_file = \n", "")
    )
    server, port = serve_cli(tmp_path)  # stdout and stderr: tmp_path/maillog
    try:
        (tmp_path / "main.cf").write_text(
            maillog_cf(tmp_path, tmp_path / "mail.log", str(tmp_path))
        )
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        wait_text(tmp_path / "mail.log", "reload -- configuration", server.processes())
        session(port)
        wait_text(tmp_path / "mail.log", "status=sent")
    finally:
        assert server.stop() == 0
    lines = (tmp_path / "mail.log").read_text().splitlines()
    assert [line for line in lines if not STAMPED.match(line)] == []
    assert "status=sent" not in (tmp_path / "maillog").read_text()


def test_stamp_is_the_local_time_of_the_line() -> None:
    stream = io.StringIO()
    handler = MaillogHandler(stream, "/var/log/x", "mx")
    handler.setFormatter(DaemonFormatter("smtpd"))
    before = time.time()
    handler.line(None, "hello")  # no loop running: written at once
    after = time.time()
    line = stream.getvalue()
    assert STAMPED.match(line)
    assert line.endswith("]: hello\n")
    stamps = {time.strftime("%b %d %H:%M:%S", time.localtime(t)) for t in (before, after)}
    assert line[:15] in stamps


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("/dev/stdout", True),
        ("/var/log/mail.log", True),
        # A plain string comparison: Postfix 3.7.11's postlog, with the
        # default prefixes, goes on to the postlog socket for /variable/x and
        # stops for /tmp/x (checked with strace).
        ("/variable/x", True),
        ("/tmp/x", False),
    ],
)
def test_default_prefixes_compare_strings_as_postfix_does(
    tmp_path: Path, value: str, allowed: bool
) -> None:
    (tmp_path / "main.cf").write_text(f"maillog_file = {value}\n")
    if allowed:
        assert maillog_path(load_config(tmp_path)) == value
    else:
        with pytest.raises(ConfigError, match="does not match any prefix"):
            maillog_path(load_config(tmp_path))


def test_prefork_parent_opens_the_file_for_each_line(tmp_path: Path) -> None:
    # The prefork parent's stream: its next line after a rotation goes to
    # the new file, without a reload of its own.
    from mailhost.maillog import open_maillog

    path = tmp_path / "maillog"
    stream = open_maillog(str(path), by_name=True)
    stream.write("one\n")
    os.rename(path, tmp_path / "maillog.1")
    stream.write("two\n")
    assert (tmp_path / "maillog.1").read_text() == "one\n"
    assert path.read_text() == "two\n"
