"""Replies that need a broken component: queue write errors, a full disk,
alias expansion failures, an AUTH back-end outage, TLS without a certificate,
a misconfigured restriction.  The protocol runs in the test's event loop
with small in-test seams."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mailhost.cleanup.seams import ClientInfo, ExpansionFailed, Submission
from mailhost.cleanup.service import Cleanup
from mailhost.config import Config
from mailhost.errors import TableTempFail
from mailhost.reply import ALIAS_EXPANSION_ERROR, Reply
from mailhost.smtpd import replies
from mailhost.smtpd.handler import SmtpdHandler
from mailhost.smtpd.protocol import SmtpdProtocol
from mailhost.smtpd.sasl import PasswordChecker
from mailhost.smtpd.server import tls_context
from mailhost.smtpd.settings import SmtpdSettings
from mailhost.tables.base import Table
from mailhost.tables.maps import Maps
from tests.support.checks import static_checks


class AcceptAll:
    def __init__(self, expand_error: Reply | None = None) -> None:
        self.expand_error = expand_error

    async def check_recipient(
        self, recipient: str, sender: str, client: ClientInfo, size: int = 0
    ) -> Reply | None:
        return None

    async def expand(self, recipient: str) -> Sequence[str]:
        if self.expand_error is not None:
            raise ExpansionFailed(
                self.expand_error, f"unreasonable virtual_alias_maps map nesting for {recipient}"
            )
        return [recipient]


@dataclass
class MemoryTransaction:
    queue_id: str
    fail: OSError | None
    committed: list[Submission] = field(default_factory=list)
    aborted: bool = False

    async def commit(self, submission: Submission, content: Sequence[bytes]) -> int:
        if self.fail is not None:
            raise self.fail
        self.committed.append(submission)
        return sum(len(line) + 1 for line in content)

    async def abort(self) -> None:
        self.aborted = True


@dataclass
class MemoryQueue:
    fail: OSError | None = None
    transactions: list[MemoryTransaction] = field(default_factory=list)

    async def open(self) -> MemoryTransaction:
        txn = MemoryTransaction(f"ABC{len(self.transactions):03d}", self.fail)
        self.transactions.append(txn)
        return txn


class DownTable(Table):
    type_name = "down"

    async def _lookup(self, key: str) -> str | None:
        raise TableTempFail("database is down")


def settings(**values: str) -> SmtpdSettings:
    base = {"myhostname": "mx.example.com", "mail_name": "Postfix", "smtpd_error_sleep_time": "0"}
    return SmtpdSettings.from_config(Config(Path("/nonexistent"), {**base, **values}))


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def reply(self) -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 5)).decode().rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    async def cmd(self, text: str) -> str:
        self.writer.write(text.encode() + b"\r\n")
        return await self.reply()


@pytest.fixture
async def connect() -> AsyncIterator[object]:
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def make(handler: SmtpdHandler, tls: object = None) -> Client:
        server = await asyncio.get_running_loop().create_server(
            lambda: SmtpdProtocol(handler, service="test", tls_context=tls), "127.0.0.1", 0
        )
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        client = Client(reader, writer)
        assert (await client.reply()).startswith("220 ")
        return client

    yield make
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()
    await asyncio.sleep(0.05)


def handler(
    s: SmtpdSettings, *, queue: MemoryQueue | None = None, policy: AcceptAll | None = None,
    passwords: PasswordChecker | None = None, restrictions: tuple[str, ...] = (),
) -> SmtpdHandler:  # fmt: skip
    policy = policy or AcceptAll()
    return SmtpdHandler(
        settings=s,
        recipients=policy,
        cleanup=Cleanup(queue or MemoryQueue(), policy),
        checks=static_checks(smtpd_sender_restrictions=restrictions) if restrictions else None,
        passwords=passwords,
    )


async def send_message(client: Client) -> str:
    await client.cmd("EHLO client.test")
    assert await client.cmd("MAIL FROM:<a@client.test>") == "250 2.1.0 Ok"
    assert await client.cmd("RCPT TO:<b@example.com>") == "250 2.1.5 Ok"
    assert await client.cmd("DATA") == str(replies.DATA_GO_AHEAD)
    return await client.cmd("Subject: x\r\n\r\nbody\r\n.")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.EIO, "Input/output error"), "451 4.3.0 Error: queue file write error"),
        (OSError(errno.ENOSPC, "No space left on device"), "452 4.3.1 Insufficient system storage"),
    ],
)
async def test_queue_failures(connect, error: OSError, expected: str) -> None:  # type: ignore[no-untyped-def]
    queue = MemoryQueue(fail=error)
    client = await connect(handler(settings(), queue=queue))
    assert await send_message(client) == expected
    assert queue.transactions[0].aborted
    # The session goes on: the next transaction is independent.
    assert await client.cmd("MAIL FROM:<a@client.test>") == "250 2.1.0 Ok"


async def test_alias_expansion_failure(connect) -> None:  # type: ignore[no-untyped-def]
    queue = MemoryQueue()
    client = await connect(
        handler(settings(), queue=queue, policy=AcceptAll(ALIAS_EXPANSION_ERROR))
    )
    assert await send_message(client) == "451 4.6.0 Alias expansion error"
    assert queue.transactions[0].aborted
    assert not queue.transactions[0].committed


async def test_auth_backend_outage_is_temporary(connect) -> None:  # type: ignore[no-untyped-def]
    maps = Maps("mailhost_sasl_password_maps", [DownTable("x")])
    s = settings(smtpd_sasl_auth_enable="yes", mailhost_sasl_password_maps="down:x")
    client = await connect(handler(s, passwords=PasswordChecker(maps)))
    await client.cmd("EHLO client.test")
    assert await client.cmd("AUTH PLAIN AGJvYgBzZWNyZXQ=") == (
        "454 4.7.0 Temporary authentication failure: mailhost_sasl_password_maps lookup failure"
    )


async def test_starttls_not_configured_and_no_certificate(connect) -> None:  # type: ignore[no-untyped-def]
    plain = await connect(handler(settings(smtpd_tls_security_level="none")))
    await plain.cmd("EHLO client.test")
    assert await plain.cmd("STARTTLS") == "502 5.5.1 Error: command not implemented"
    s = settings(smtpd_tls_security_level="may")
    assert tls_context(s) is None  # no smtpd_tls_cert_file: Postfix warns and offers no TLS
    broken = await connect(handler(s))
    assert "STARTTLS" not in await broken.cmd("EHLO client.test")
    assert await broken.cmd("STARTTLS") == "454 4.7.0 TLS not available due to local problem"


async def test_unknown_sender_restriction_is_a_configuration_error(connect) -> None:  # type: ignore[no-untyped-def]
    client = await connect(handler(settings(), restrictions=("check_sender_mx_fantasy",)))
    await client.cmd("EHLO client.test")
    await client.cmd("MAIL FROM:<a@client.test>")
    assert await client.cmd("RCPT TO:<b@example.com>") == "451 4.3.5 Server configuration error"


async def test_null_sender_and_size_memory(connect) -> None:  # type: ignore[no-untyped-def]
    client = await connect(handler(settings(message_size_limit="1000")))
    await client.cmd("EHLO client.test")
    assert (
        await client.cmd("MAIL FROM:<> SIZE=2000") == "552 5.3.4 Message size exceeds fixed limit"
    )
    assert (
        await client.cmd("RSET") == "250 2.0.0 Ok"
    )  # RSET forgets the SIZE, as Postfix's mail_reset
    assert await client.cmd("MAIL FROM:<>") == "250 2.1.0 Ok"
