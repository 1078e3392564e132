"""The ``mailhost-sendmail`` console script under the names Postfix's
sendmail answers to (argv[0]): ``sendmail`` submits, ``mailq`` is ``-bp``,
``newaliases`` is ``-I``; and ``mailhost sendmail`` takes sendmail's own
option syntax untouched by click."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailhost.cli import COMMANDS
from tests.sendmail.helpers import write_config

SENDMAIL = Path(sys.executable).with_name("mailhost-sendmail")


def linked(tmp_path: Path, name: str) -> Path:
    if not SENDMAIL.exists():
        pytest.skip("mailhost-sendmail is not installed in this virtualenv (pip install -e .)")
    link = tmp_path / "bin" / name
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(SENDMAIL)
    return link


def run(command: list[str], config: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "MAILHOST_CONFIG": str(config)}
    return subprocess.run(
        command, check=False, input=stdin, env=env, capture_output=True, timeout=60
    )


def test_named_sendmail_submits(tmp_path: Path) -> None:
    config = write_config(tmp_path / "etc")
    done = run([str(linked(tmp_path, "sendmail")), "-oi", "--", "bob"], config, b"x\n.\ny\n")
    assert (done.returncode, done.stderr) == (0, b"")
    assert len(list((config / "queue" / "maildrop").iterdir())) == 1


@pytest.mark.parametrize(("name", "command"), [("mailq", "mailq"), ("newaliases", "newaliases")])
def test_named_mailq_and_newaliases_run_those_commands(
    tmp_path: Path, name: str, command: str
) -> None:
    config = write_config(tmp_path / "etc")
    done = run([str(linked(tmp_path, name))], config)
    if command in COMMANDS:
        # The command exists in this installation: it ran (its own tests
        # check what it prints); nothing was submitted.
        assert not (config / "queue" / "maildrop").exists() or not list(
            (config / "queue" / "maildrop").iterdir()
        )
    else:
        assert done.returncode == 69
        assert done.stderr == (
            f"sendmail: fatal: mailhost {command} is not available in this installation\n".encode()
        )


def test_mailhost_sendmail_subcommand_keeps_sendmail_syntax(tmp_path: Path) -> None:
    config = write_config(tmp_path / "etc")
    done = run(
        [sys.executable, "-m", "mailhost", "sendmail", "-f", "", "-oi", "--", "-bob"],
        config,
        b"Subject: s\n\n.\n",
    )
    assert (done.returncode, done.stderr) == (0, b"")
    (path,) = (config / "queue" / "maildrop").iterdir()
    text = path.read_bytes()
    assert b'"sender":""' in text
    assert b'"address":"-bob"' in text
    assert text.count(b"\n.\n") == 1  # the lone dot kept (-oi)
