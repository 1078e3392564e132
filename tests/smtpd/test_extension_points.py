"""The outside APIs smtpd and the test peers are built on, checked by name
and signature so that a new Python or aiosmtpd release that changes one fails
here, loudly, rather than somewhere in a conversation.

smtpd's connection (:mod:`mailhost.smtpd.stream`) uses only asyncio's
documented Protocol/Transport API and ``loop.start_tls``; aiosmtpd is the
framework of the test suite's SMTP and LMTP peers (tests/smtp/test_peers.py),
through its public names only.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import time

import aiosmtpd
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from mailhost.smtpd.stream import LineProtocol, TlsSetupError
from tests.smtpd.test_protocol_inprocess import Client, connect, handler, settings

__all__ = ["connect"]  # the fixture


def parameters(function: object) -> set[str]:
    return set(inspect.signature(function).parameters)  # type: ignore[arg-type]


def init_parameters(cls: type) -> set[str]:
    """The keyword names a class's constructors take along its bases."""
    names: set[str] = set()
    for base in cls.__mro__:
        if "__init__" in vars(base) and base is not object:
            names |= parameters(vars(base)["__init__"])
    return names


async def test_the_event_loop_has_start_tls_for_a_server_side() -> None:
    loop = asyncio.get_running_loop()
    assert {"transport", "protocol", "sslcontext", "server_side"} <= parameters(loop.start_tls)
    assert {"ssl", "reuse_address", "reuse_port", "start_serving"} <= parameters(loop.create_server)
    assert "sock" in parameters(loop.connect_accepted_socket)


def test_protocol_callbacks_and_transport_methods_exist() -> None:
    for name in (
        "connection_made", "data_received", "eof_received", "connection_lost",
        "pause_writing", "resume_writing",
    ):  # fmt: skip
        assert callable(getattr(asyncio.Protocol, name)), name
        assert name in vars(LineProtocol), name  # ours override asyncio's names
    for name in (
        "write", "close", "abort", "is_closing", "get_extra_info", "get_write_buffer_size",
        "pause_reading", "resume_reading", "set_protocol",
    ):  # fmt: skip
        assert callable(getattr(asyncio.Transport, name)), name
    error = asyncio.IncompleteReadError(b"partial", None)
    assert (error.partial, error.expected) == (b"partial", None)


async def test_start_tls_upgrades_a_line_protocol_and_a_failed_handshake_is_ours() -> None:
    """The STARTTLS switch end to end on the running loop: a handshake that
    succeeds carries the next line; one the client breaks raises TlsSetupError."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.example.com").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    loop = asyncio.get_running_loop()
    outcomes: asyncio.Queue[object] = asyncio.Queue()
    tasks: list[asyncio.Task[None]] = []

    class Upgrading(LineProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            tasks.append(loop.create_task(self.session()))

        async def session(self) -> None:
            try:
                await self.reader.read_piece()
                self.write(b"220 go ahead\r\n")
                await self.start_tls(server_context)
                outcomes.put_nowait((self.over_tls, await self.reader.read_piece()))
            except TlsSetupError as exc:
                outcomes.put_nowait(exc)

    server = await loop.create_server(lambda: Upgrading(loop, 5.0), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\r\n")
        assert await reader.readline() == b"220 go ahead\r\n"
        await writer.start_tls(client_context, server_hostname="mx.example.com")
        writer.write(b"EHLO client.test\r\n")
        assert await asyncio.wait_for(outcomes.get(), 5) == (True, (b"EHLO client.test\r\n", True))
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\r\n")
        assert await reader.readline() == b"220 go ahead\r\n"
        writer.write(b"this is no TLS client hello\r\n" * 4)
        outcome = await asyncio.wait_for(outcomes.get(), 5)
        assert isinstance(outcome, TlsSetupError)
        assert isinstance(outcome.__cause__, ssl.SSLError)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_aiosmtpd_public_names_the_test_peers_use() -> None:
    major_minor = tuple(int(part) for part in aiosmtpd.__version__.split(".")[:2])
    assert major_minor == (1, 4), aiosmtpd.__version__  # pyproject pins >=1.4.6,<1.5
    assert {"handler", "hostname", "port", "ready_timeout"} <= init_parameters(Controller)
    assert callable(Controller.factory)
    assert callable(Controller.start)
    assert callable(Controller.stop)
    for cls in (SMTP, LMTP):
        assert {"handler", "hostname", "tls_context", "authenticator", "auth_require_tls"} <= (
            init_parameters(cls)
        )
    assert issubclass(LMTP, SMTP)
    assert AuthResult(success=True, handled=False).success
    login = LoginPassword(b"user", b"secret")
    assert (login.login, login.password) == (b"user", b"secret")


async def test_activity_moves_the_idle_deadline_and_idleness_still_times_out(connect) -> None:  # type: ignore[no-untyped-def]
    client: Client = await connect(handler(settings(smtpd_timeout="1s")))
    await asyncio.sleep(0.6)
    assert (await client.cmd("NOOP")).startswith("250 ")
    await asyncio.sleep(0.6)  # 1.2 s after the greeting, 0.6 s after NOOP
    assert (await client.cmd("NOOP")).startswith("250 ")
    quiet = time.monotonic()
    assert (await client.reply()) == "421 4.4.2 mx.example.com Error: timeout exceeded"
    assert 0.9 <= time.monotonic() - quiet < 2.0
