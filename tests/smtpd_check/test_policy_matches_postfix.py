"""check_policy_service against Postfix 3.7.11's recorded behaviour
(postfix_policy.json, written by record_postfix_policy.py): mailhost's smtpd
runs in the test's event loop with the case's restriction list, talks to the
same policy peer (policy_peer.py) and must give the same SMTP replies, the
same warning and reject lines, send the same request attributes in the same
order, and open as many connections."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from mailhost.cleanup.seams import ClientInfo, Submission
from mailhost.cleanup.service import Cleanup
from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.reply import Reply
from mailhost.smtpd.handler import SmtpdHandler
from mailhost.smtpd.protocol import SmtpdProtocol
from mailhost.smtpd.server import tls_context
from mailhost.smtpd.settings import SmtpdSettings
from mailhost.smtpd_check.policy_client import PolicyServices
from mailhost.smtpd_check.policy_settings import settings_from
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from tests.smtpd_check.policy_cases import (
    CASES,
    HELO,
    MESSAGE,
    RECIPIENT,
    SENDER,
    SIZE,
    PolicyCase,
    attribute,
    interesting,
    normalise,
    service_text,
)
from tests.smtpd_check.policy_peer import PolicyPeer
from tests.smtpd_check.record_postfix_policy import client_context
from tests.support.checks import StaticFacts
from tests.support.net import free_port

RECORDED = json.loads((Path(__file__).parent / "postfix_policy.json").read_text())
PREFIX = "smtpd_policy_service_"


class AcceptAll:
    async def check_recipient(
        self, recipient: str, sender: str, client: ClientInfo, size: int = 0
    ) -> Reply | None:
        return None

    async def expand(self, recipient: str) -> Sequence[str]:
        return [recipient]


@dataclass
class MemoryTransaction:
    queue_id: str

    async def commit(self, submission: Submission, content: Sequence[bytes]) -> int:
        return sum(len(line) + 1 for line in content)

    async def abort(self) -> None:
        return None


class MemoryQueue:
    def __init__(self) -> None:
        self.count = 0

    async def open(self) -> MemoryTransaction:
        self.count += 1
        return MemoryTransaction(f"ABC{self.count:03d}")


def case_handler(case: PolicyCase, port: int, cert: Path) -> SmtpdHandler:
    settings = SmtpdSettings.from_config(
        Config(Path("/nonexistent"), {"myhostname": "mx.example.com", "mail_name": "Postfix",
                                      "smtpd_error_sleep_time": "0",
                                      "smtpd_tls_security_level": "may",
                                      "smtpd_tls_cert_file": str(cert)})
    )  # fmt: skip
    overrides = {k.removeprefix(PREFIX): v for k, v in case.extra if k.startswith(PREFIX)}
    checks = CheckSettings(
        lists={case.parameter: tuple(split_list(f"check_policy_service {service_text(case, port)}"))},
        reject_unlisted_recipient=False,
        delay_reject=dict(case.extra).get("smtpd_delay_reject", "yes") == "yes",
        policy=PolicyServices(base=settings_from(overrides)),
    )  # fmt: skip
    policy = AcceptAll()
    return SmtpdHandler(
        settings=settings,
        recipients=policy,
        cleanup=Cleanup(MemoryQueue(), policy),
        checks=SmtpdChecks(checks, StaticFacts(final_domains=frozenset({"example.com"}))),
        passwords=None,
    )


async def reply(reader: asyncio.StreamReader) -> str:
    lines = []
    while True:
        line = (await asyncio.wait_for(reader.readline(), 30)).decode().rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines[-1][:4] + "\n".join(x[4:] for x in lines)


async def dialogue(port: int, case: PolicyCase) -> list[str]:
    """What record_postfix_policy.dialogue() does, with asyncio streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def cmd(text: str) -> str:
        writer.write(text.encode() + b"\r\n")
        return await reply(reader)

    replies = []
    try:
        await reply(reader)
        await cmd(f"EHLO {HELO}")
        if case.tls:
            assert (await cmd("STARTTLS")).startswith("220")
            await writer.start_tls(client_context())
            await cmd(f"EHLO {HELO}")
        assert (await cmd(f"MAIL FROM:<{SENDER}> SIZE={SIZE}")).startswith("250")
        for _ in range(case.rcpts):
            replies.append(await cmd(f"RCPT TO:<{RECIPIENT}>"))
        if case.data:
            replies.append(await cmd("DATA"))
            if replies[-1].startswith("354"):
                replies.append(await cmd(MESSAGE + "."))
        await cmd("QUIT")
    finally:
        writer.close()
    return replies


@pytest.fixture
async def smtpd() -> AsyncIterator[object]:
    servers: list[asyncio.Server] = []

    async def start(handler: SmtpdHandler) -> int:
        context = tls_context(handler.settings)
        server = await asyncio.get_running_loop().create_server(
            lambda: SmtpdProtocol(handler, service="test", tls_context=context), "127.0.0.1", 0
        )
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def logged(caplog: pytest.LogCaptureFixture, port: int) -> list[str]:
    lines = []
    for record in caplog.records:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"warning: {text}"
        if interesting(text):
            lines.append(normalise(text, port))
    return lines


@pytest.mark.parametrize("name", list(CASES))
async def test_policy_case_matches_postfix(
    name: str,
    smtpd,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    case = CASES[name]
    expected = RECORDED[name]
    caplog.set_level(logging.INFO, logger="mailhost")
    peer = (
        None if case.behaviour == "none" else await PolicyPeer(case.behaviour, case.reply).start()
    )
    port = peer.port if peer is not None else free_port()
    cert = tmp_path / "cert.pem"
    trustme.CA().issue_cert("mx.example.com").private_key_and_cert_chain_pem.write_to_path(
        str(cert)
    )
    handler = case_handler(case, port, cert)
    try:
        smtp_port = await smtpd(handler)
        replies = await dialogue(smtp_port, case)
        await asyncio.sleep(0.05)  # the session's last lines
    finally:
        assert handler.checks is not None
        handler.checks.settings.policy.close()
        if peer is not None:
            await peer.stop()
    assert [normalise(r, port) for r in replies] == expected["replies"]
    assert logged(caplog, port) == expected["log"]
    requests = [
        [attribute(k, v) for k, v in request] for request in (peer.requests if peer else [])
    ]
    assert requests == expected["requests"]
    assert (peer.connections if peer else 0) == expected["connections"]
