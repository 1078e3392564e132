"""mailhost's quota-status service and Dovecot 2.3's ``quota-status -p
postfix`` answer the same requests with the same actions, for the same
mailbox states (both services live on loopback: Dovecot started by the test
with a throwaway configuration, as in test_dovecot_interop.py).

Dovecot is configured as its documentation advises for Postfix
(``quota_status_success = DUNNO``); everything else is its built-in
behaviour, including the default quota_grace of 10 %, which the mailhost
site (status_site.py) sets too."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mailhost.attr_plain import print_plain
from mailhost.config import load_config
from mailhost.config.mastercf import parse_master_cf
from mailhost.quota.status_service import QuotaStatusService
from mailhost.tables.registry import TableRegistry
from tests import dovecot as dovecot_server
from tests.quota.record_postfix_quota_status import QUOTA_STATUS
from tests.quota.status_site import DOVECOT, LIMIT, MAILBOXES, write_site
from tests.quota.test_dovecot_interop import DOVECOT as DOVECOT_BINARY
from tests.quota.test_dovecot_interop import config
from tests.support.net import free_port

pytestmark = pytest.mark.skipif(
    DOVECOT_BINARY is None, reason="dovecot not installed (apt-get install dovecot-imapd)"
)

SUCCESS = "plugin {\n  quota_status_success = DUNNO\n}\n"


@pytest.fixture(scope="module")
def dovecot_policy() -> Iterator[int]:
    """Dovecot's quota-status on a free loopback port (yielded)."""
    assert DOVECOT_BINARY is not None
    root = Path(tempfile.mkdtemp(prefix="mailhost-quota-status-"))
    root.chmod(0o755)
    uid, gid = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    for name, used in MAILBOXES.items():
        maildir = root / "home" / f"{name}@example.com" / "Maildir"
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True)
        (maildir / "maildirsize").write_text(f"{LIMIT}S\n{used} {1 if used else 0}\n")
        for path in [root / "home", maildir.parent, maildir, *maildir.rglob("*")]:
            os.chown(path, uid, gid)
    policy = free_port()
    conf = root / "dovecot.conf"
    text = config(root, free_port(), uid, gid).replace(
        "quota_rule = *:bytes=2000", f"quota_rule = *:bytes={LIMIT}"
    )
    conf.write_text(text + QUOTA_STATUS.format(port=policy) + SUCCESS)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", policy), timeout=1).close()
        except OSError:
            return False
        return True

    def log() -> str:
        path = root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    with dovecot_server.running(DOVECOT_BINARY, conf, root, ready=listening, log=log):
        yield policy


@pytest.fixture
async def mailhost_policy(tmp_path: Path) -> AsyncIterator[int]:
    write_site(tmp_path)
    cfg = load_config(tmp_path)
    registry = TableRegistry.from_config(cfg)
    service = QuotaStatusService.from_config(cfg, registry)
    port = free_port()
    await service.listen(
        parse_master_cf(f"127.0.0.1:{port} inet n - n - - quota-status\n")[0], str(tmp_path)
    )
    yield port
    await service.close()
    await registry.close()


async def ask(port: int, attributes: list[tuple[str, str]]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(print_plain(attributes))
        return await asyncio.wait_for(reader.readuntil(b"\n\n"), 10)
    finally:
        writer.close()


def request(size: int | None, rcpt: str) -> list[tuple[str, str]]:
    """What Postfix sends, as far as quota-status reads it."""
    return [("request", "smtpd_access_policy"), ("protocol_state", "RCPT"),
            ("sender", "sender@example.org"), ("recipient", rcpt),
            ("size", str(size or 0))]  # fmt: skip


@pytest.mark.parametrize("case", sorted(DOVECOT["cases"]))
async def test_quota_status_answers_as_dovecot_quota_status(
    dovecot_policy: int, mailhost_policy: int, case: str
) -> None:
    size, rcpt = DOVECOT["cases"][case]
    assert await ask(mailhost_policy, request(size, rcpt)) == await ask(
        dovecot_policy, request(size, rcpt)
    )


async def test_request_without_recipient_as_dovecot(
    dovecot_policy: int, mailhost_policy: int
) -> None:
    attributes = [("request", "smtpd_access_policy"), ("size", "10")]
    answer = await ask(dovecot_policy, attributes)
    assert answer == b"action=DUNNO\n\n"
    assert await ask(mailhost_policy, attributes) == answer
