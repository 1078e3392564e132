"""Record what Dovecot 2.3's LMTP server answers in the cases lmtpd copies
(tests/lmtpd/dovecot_lmtp.json): run ``python -m tests.lmtpd.record_dovecot_lmtp``
as root with dovecot-lmtpd installed.  The same cases run against a live
Dovecot in test_matches_dovecot.py, so a Dovecot that starts answering
differently fails there, not silently."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
import time
from pathlib import Path

from tests import dovecot as dovecot_server
from tests.lmtpd.site import LmtpClient, comparable, session, write_dovecot_site
from tests.support.net import free_port

RECORDING = Path(__file__).parent / "dovecot_lmtp.json"

#: case -> the recipients of one LMTP session (LHLO, MAIL, RCPT..., DATA, QUIT).
SESSIONS: dict[str, list[str]] = {
    "success": ["alice@example.com"],
    "unknown_user": ["nobody@example.com"],
    "over_quota": ["full@example.com"],
    "one_of_two_fails_at_rcpt": ["alice@example.com", "full@example.com"],
    "one_of_two_fails_after_data": ["bob@example.com", "tight@example.com"],
    "same_recipient_twice": ["alice@example.com", "alice@example.com"],
    # quota_full_tempfail = yes (mailhost: mailhost_quota_overquota_bounce = no)
    "over_quota_tempfail": ["tempfull@example.com", "temptight@example.com"],
}
#: case -> commands sent after the greeting, one reply each.
COMMANDS: dict[str, list[str]] = {
    "helo_ehlo": ["HELO client.test", "EHLO client.test"],
    "lhlo_without_hostname": ["LHLO"],
    "unknown_command": ["FOO", ""],
    "rcpt_before_mail": ["LHLO client.test", "RCPT TO:<alice@example.com>"],
    "rcpt_parameter": [
        "LHLO client.test",
        "MAIL FROM:<s@client.test>",
        "RCPT TO:<alice@example.com> FOO=1",
    ],
    "mail_parameter": ["LHLO client.test", "MAIL FROM:<s@client.test> FOO=bar"],
    "data_without_valid_recipient": [
        "LHLO client.test",
        "MAIL FROM:<s@client.test>",
        "RCPT TO:<nobody@example.com>",
        "DATA",
    ],
}


async def run_commands(port: int, commands: list[str]) -> list[str]:
    client, _ = await LmtpClient.connect(port)
    try:
        return [await client.command(line) for line in commands]
    finally:
        await client.close()


async def record(port: int) -> dict[str, list[str]]:
    """Every case's replies (ids masked, LHLO's capabilities left out)."""
    out: dict[str, list[str]] = {}
    for name, recipients in SESSIONS.items():
        out[name] = [comparable(r) for r in await session(port, recipients)]
    for name, commands in COMMANDS.items():
        answers = await run_commands(port, commands)
        out[name] = [a for c, a in zip(commands, answers, strict=True) if c != "LHLO client.test"]
    return out


def main() -> None:
    dovecot = shutil.which("dovecot")
    assert dovecot is not None, "apt-get install dovecot-lmtpd"
    root = Path(tempfile.mkdtemp(prefix="mailhost-record-lmtp-"))
    port = free_port()
    conf = write_dovecot_site(root, port)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    with dovecot_server.running(dovecot, conf, root, ready=listening, log=lambda: ""):
        time.sleep(0.2)
        answers = asyncio.run(record(port))
    version = "Dovecot 2.3.19.1 (Debian dovecot-lmtpd), lmtp_rcpt_check_quota = yes"
    RECORDING.write_text(json.dumps({"dovecot": version, "cases": answers}, indent=2) + "\n")


if __name__ == "__main__":
    main()
