"""One SMTP or LMTP client session on asyncio streams (smtp(8), lmtp(8)).

A session is opened by :meth:`ClientSession.open` — connect (TCP or a UNIX
socket), the greeting, EHLO/LHLO, STARTTLS as ``smtp_tls_security_level``
wants (``none``, ``may``, ``encrypt``, ``verify``/``secure`` against
``smtp_tls_CAfile``), AUTH PLAIN or LOGIN with the credentials the transport
found in ``smtp_sasl_password_maps`` — and then carries any number of mail
transactions (:meth:`ClientSession.send`, RSET between them when cached).

Commands are sent one at a time (no PIPELINING: the same result, simpler to
reason about), each with its Postfix timeout (``smtp_helo_timeout``,
``smtp_mail_timeout``, ``smtp_rcpt_timeout``, ``smtp_data_init_timeout``,
``smtp_data_xfer_timeout``, ``smtp_data_done_timeout``, ``smtp_rset_timeout``,
``smtp_quit_timeout``).  The message goes out with CRLF line ends and dot
stuffing (RFC 5321 4.5.2).  LMTP (RFC 2033) answers end of DATA once per
accepted recipient; each answer is that recipient's result.

Failures are :class:`SessionError` with Postfix's text
(``host H[A] said: REPLY (in reply to RCPT TO command)``, ``lost connection
with H[A] while sending RCPT TO``, ``conversation with H[A] timed out while
...``, ``connect to H[A]:P: Connection refused``), recorded from Postfix 3.7
in tests/smtp/postfix_smtp.json.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailhost.delivery.status import DeliveryStatus
from mailhost.errors import ConfigError
from mailhost.log import logger

log = logger("smtp")

TLS_LEVELS = ("none", "may", "encrypt", "verify", "secure")
#: An SMTP reply line is at most 512 octets (RFC 5321 4.5.3.1.5); be lenient.
MAX_LINE = 16384
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Timeouts:
    """The smtp_*_timeout / lmtp_*_timeout values, in seconds."""

    connect: float = 30.0
    helo: float = 300.0
    starttls: float = 300.0
    mail: float = 300.0
    rcpt: float = 300.0
    data_init: float = 120.0
    data_xfer: float = 180.0
    data_done: float = 600.0
    rset: float = 20.0
    quit: float = 300.0


@dataclass(frozen=True)
class ClientSettings:
    """What a session needs from main.cf (per transport: smtp_* or lmtp_*)."""

    lmtp: bool = False
    helo_name: str = "localhost"
    tls_level: str = "none"
    tls_cafile: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    skip_5xx_greeting: bool = True
    #: SASL options: allow PLAIN/LOGIN without / with TLS (noplaintext).
    sasl_plaintext: bool = False
    sasl_tls_plaintext: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)

    def __post_init__(self) -> None:
        if self.tls_level not in TLS_LEVELS:
            raise ConfigError(f"invalid TLS security level: {self.tls_level}")


@dataclass(frozen=True)
class Endpoint:
    """Where a session goes: ``name[address]:port``, or a UNIX socket
    (``port`` None, ``address`` the path) logged as ``name[path]``."""

    name: str
    address: str
    port: int | None

    @property
    def peer(self) -> str:
        return f"{self.name}[{self.address}]"

    @property
    def label(self) -> str:
        """Postfix's ``relay=`` value."""
        return self.peer if self.port is None else f"{self.peer}:{self.port}"


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """One line as Postfix logs it: ``550 5.1.1 first line next line``."""
        parts = [self.lines[0]] if self.lines else [""]
        first_status = _ENHANCED.match(parts[0])
        for line in self.lines[1:]:
            m = _ENHANCED.match(line)
            same = first_status and m and m.group(0) == first_status.group(0)
            parts.append(line[m.end() :].lstrip() if same and m else line)
        return f"{self.code} " + " ".join(p for p in parts if p)

    @property
    def dsn(self) -> str:
        """The reply's enhanced status, else ``X.0.0`` from its class."""
        klass = str(self.code)[0]
        m = _ENHANCED.match(self.lines[0] if self.lines else "")
        if m and m.group(1) == klass:
            return m.group(0)
        return f"{klass}.0.0"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class SessionError(Exception):
    """The session cannot go on (or the transaction failed as a whole):
    ``status`` for every recipient still pending; ``connected`` tells whether
    a server answered (Postfix logs relay=none otherwise)."""

    def __init__(self, status: DeliveryStatus, *, connected: bool = True) -> None:
        super().__init__(status.text)
        self.status = status
        self.connected = connected


class TlsFallback(SessionError):
    """``may``: the TLS handshake failed; retry this host in plaintext."""


def _said(endpoint: Endpoint, reply: Reply, command: str) -> DeliveryStatus:
    return DeliveryStatus(
        reply.dsn,
        f"host {endpoint.peer} said: {reply.text} (in reply to {command} command)",
        remote_mta=f"dns; {endpoint.name}",
        diagnostic=f"smtp; {reply.text}",
    )


def xtext(value: str) -> str:
    """RFC 3461 4 xtext for ORCPT/ENVID values."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in value)


def smtp_body(message: bytes) -> bytes:
    """The queued content (LF line ends) as DATA wants it: CRLF line ends,
    dot stuffing, and the final ``.``."""
    lines = message.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = bytearray()
    for raw in lines:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line.startswith(b"."):
            out += b"."
        out += line + b"\r\n"
    out += b".\r\n"
    return bytes(out)


class ClientSession:
    """One connection to one server."""

    def __init__(
        self,
        endpoint: Endpoint,
        settings: ClientSettings,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.reader = reader
        self.writer = writer
        self.features: dict[str, str] = {}
        self.tls = False
        self.authenticated = False
        self.created = time.monotonic()
        self.last_used = self.created
        self.transactions = 0
        self.broken = False

    # -- opening -------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        endpoint: Endpoint,
        settings: ClientSettings,
        *,
        tls_name: str = "",
        credentials: Credentials | None = None,
        use_tls: bool = True,
    ) -> ClientSession:
        """Connect, greet, EHLO/LHLO, STARTTLS, AUTH.  ``tls_name``: the name
        the certificate must carry at level verify/secure (the MX host name
        or the nexthop)."""
        t = settings.timeouts
        where = endpoint.label
        try:
            async with asyncio.timeout(t.connect or None):
                if endpoint.port is None:
                    reader, writer = await asyncio.open_unix_connection(endpoint.address)
                else:
                    reader, writer = await asyncio.open_connection(endpoint.address, endpoint.port)
        except TimeoutError:
            raise SessionError(
                DeliveryStatus("4.4.1", f"connect to {where}: Connection timed out"),
                connected=False,
            ) from None
        except OSError as exc:
            # asyncio's text names the call; Postfix prints strerror(errno).
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise SessionError(
                DeliveryStatus("4.4.1", f"connect to {where}: {reason}"), connected=False
            ) from None
        session = cls(endpoint, settings, reader, writer)
        try:
            await session._handshake(tls_name, credentials, use_tls)
        except BaseException:
            session.abort()
            await session.wait_closed()
            raise
        return session

    async def _handshake(
        self, tls_name: str, credentials: Credentials | None, use_tls: bool
    ) -> None:
        s = self.settings
        greeting = await self._read(s.timeouts.helo, "receiving the initial server greeting")
        if greeting.code != 220:
            dsn = greeting.dsn if greeting.code >= 400 else "4.0.0"
            if dsn.startswith("5") and s.skip_5xx_greeting:
                # smtp_skip_5xx_greeting: such a server is skipped, not believed.
                dsn = "4" + dsn[1:]
            raise SessionError(
                DeliveryStatus(
                    dsn, f"host {self.endpoint.peer} refused to talk to me: {greeting.text}"
                )
            )
        await self._hello()
        level = s.tls_level if use_tls else "none"
        if level != "none":
            if "STARTTLS" in self.features:
                await self._starttls(level, tls_name)
                await self._hello()
            elif level != "may":
                raise SessionError(
                    DeliveryStatus(
                        "4.7.4",
                        f"TLS is required, but was not offered by host {self.endpoint.peer}",
                    )
                )
        if credentials is not None:
            await self._auth(credentials)

    async def _hello(self) -> None:
        verb = "LHLO" if self.settings.lmtp else "EHLO"
        reply = await self.command(
            f"{verb} {self.settings.helo_name}",
            self.settings.timeouts.helo,
            "performing the EHLO handshake" if verb == "EHLO" else "performing the LHLO handshake",
        )
        if reply.code == 250:
            self.features = _features(reply)
            return
        if verb == "EHLO" and 500 <= reply.code < 600 and reply.code != 554:
            # No ESMTP: fall back to HELO (smtp(8) does the same).
            reply = await self.command(
                f"HELO {self.settings.helo_name}", self.settings.timeouts.helo,
                "performing the HELO handshake",
            )  # fmt: skip
            if reply.code == 250:
                self.features = {}
                return
        raise SessionError(_said(self.endpoint, reply, "HELO" if verb == "EHLO" else verb))

    def _tls_context(self, level: str) -> ssl.SSLContext:
        s = self.settings
        if level in ("verify", "secure"):
            ctx = ssl.create_default_context(cafile=s.tls_cafile or None)
        else:
            # may / encrypt: encryption without authentication (smtp_tls_security_level).
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if s.tls_cert_file:
            ctx.load_cert_chain(s.tls_cert_file, s.tls_key_file or s.tls_cert_file)
        return ctx

    async def _starttls(self, level: str, tls_name: str) -> None:
        t = self.settings.timeouts
        reply = await self.command("STARTTLS", t.starttls, "sending STARTTLS")
        if reply.code != 220:
            if level == "may":
                return  # opportunistic: carry on in plaintext
            raise SessionError(_said(self.endpoint, reply, "STARTTLS"))
        try:
            ctx = self._tls_context(level)
            async with asyncio.timeout(t.starttls or None):
                await self.writer.start_tls(ctx, server_hostname=tls_name or self.endpoint.name)
        except (ssl.SSLError, ssl.CertificateError, OSError, TimeoutError) as exc:
            self.broken = True
            if level == "may":
                raise TlsFallback(
                    DeliveryStatus("4.7.5", f"Cannot start TLS: handshake failure ({exc})")
                ) from None
            text = (
                f"Server certificate not verified ({exc})"
                if isinstance(exc, ssl.SSLCertVerificationError)
                else f"Cannot start TLS: handshake failure ({exc})"
            )
            raise SessionError(DeliveryStatus("4.7.5", text)) from None
        self.tls = True
        log.info("%s", self._tls_summary(level))

    def _tls_summary(self, level: str) -> str:
        """Postfix's line: ``Untrusted TLS connection established to
        H[A]:P: TLSv1.3 with cipher NAME (256/256 bits)`` (Verified when the
        certificate was checked at level verify/secure)."""
        obj = self.writer.get_extra_info("ssl_object")
        version = str(obj.version()) if obj is not None else ""
        cipher = obj.cipher() if obj is not None else None
        name, bits = (str(cipher[0]), int(cipher[2])) if cipher else ("", 0)
        trust = "Verified" if level in ("verify", "secure") else "Untrusted"
        return (
            f"{trust} TLS connection established to {self.endpoint.label}: "
            f"{version} with cipher {name} ({bits}/{bits} bits)"
        )

    async def _auth(self, credentials: Credentials) -> None:
        offered = self.features.get("AUTH", "").upper().split()
        s = self.settings
        plaintext_ok = s.sasl_tls_plaintext if self.tls else s.sasl_plaintext
        mechanisms = [m for m in ("PLAIN", "LOGIN") if m in offered and plaintext_ok]
        if not mechanisms:
            raise SessionError(
                DeliveryStatus(
                    "4.7.0",
                    "SASL authentication failed; cannot authenticate to server "
                    f"{self.endpoint.peer}: no mechanism available",
                )
            )
        t = self.settings.timeouts.helo
        stage = "performing the AUTH handshake"
        if mechanisms[0] == "PLAIN":
            token = f"\0{credentials.username}\0{credentials.password}".encode()
            reply = await self.command(f"AUTH PLAIN {base64.b64encode(token).decode()}", t, stage)
        else:
            reply = await self.command("AUTH LOGIN", t, stage)
            for secret in (credentials.username, credentials.password):
                if reply.code != 334:
                    break
                reply = await self.command(base64.b64encode(secret.encode()).decode(), t, stage)
        if reply.code != 235:
            # smtp_sasl_auth_soft_bounce = yes: a rejected login defers.
            dsn = "4" + reply.dsn[1:]
            raise SessionError(
                DeliveryStatus(
                    dsn,
                    f"SASL authentication failed; server {self.endpoint.peer} said: {reply.text}",
                )
            )
        self.authenticated = True

    # -- the protocol ----------------------------------------------------------------------

    async def _read(self, limit: float, stage: str) -> Reply:
        lines: list[str] = []
        try:
            async with asyncio.timeout(limit or None):
                while True:
                    raw = await self.reader.readline()
                    if not raw.endswith(b"\n"):
                        raise ConnectionResetError
                    line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                    if len(line) < 3 or not line[:3].isdigit():
                        raise SessionError(
                            DeliveryStatus(
                                "4.4.2",
                                f"malformed reply from {self.endpoint.peer} while {stage}",
                            )
                        )
                    lines.append(line[4:])
                    if line[3:4] != "-":
                        self.last_used = time.monotonic()
                        return Reply(int(line[:3]), tuple(lines))
        except TimeoutError:
            self.broken = True
            raise SessionError(
                DeliveryStatus(
                    "4.4.2", f"conversation with {self.endpoint.peer} timed out while {stage}"
                )
            ) from None
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
            # ValueError: a line longer than the reader's limit.
            self.broken = True
            raise SessionError(
                DeliveryStatus("4.4.2", f"lost connection with {self.endpoint.peer} while {stage}")
            ) from None

    async def _write(self, data: bytes, limit: float, stage: str) -> None:
        try:
            async with asyncio.timeout(limit or None):
                self.writer.write(data)
                await self.writer.drain()
        except TimeoutError:
            self.broken = True
            raise SessionError(
                DeliveryStatus(
                    "4.4.2", f"conversation with {self.endpoint.peer} timed out while {stage}"
                )
            ) from None
        except (ConnectionError, OSError):
            self.broken = True
            raise SessionError(
                DeliveryStatus("4.4.2", f"lost connection with {self.endpoint.peer} while {stage}")
            ) from None

    async def command(self, line: str, limit: float, stage: str) -> Reply:
        await self._write(line.encode("utf-8") + b"\r\n", limit, stage)
        reply = await self._read(limit, stage)
        if reply.code == 421:
            self.broken = True  # the server is closing the connection
        return reply

    def mail_command(self, sender: str, size: int, params: Sequence[tuple[str, str]]) -> str:
        parts = [f"MAIL FROM:<{sender}>"]
        if "SIZE" in self.features:
            parts.append(f"SIZE={size}")
        for name, value in params:
            upper = name.upper()
            wanted = {"BODY": "8BITMIME", "SMTPUTF8": "SMTPUTF8", "RET": "DSN", "ENVID": "DSN"}
            if wanted.get(upper) in self.features:
                parts.append(upper if not value else f"{upper}={value}")
        return " ".join(parts)

    def size_limit(self) -> int:
        """The server's SIZE limit (0: none announced or unlimited)."""
        value = self.features.get("SIZE", "").strip()
        return int(value) if value.isdigit() else 0

    async def send(
        self,
        sender: str,
        recipients: Sequence[tuple[str, str]],
        message: bytes,
        *,
        size: int,
        mail_params: Sequence[tuple[str, str]] = (),
    ) -> list[DeliveryStatus]:
        """One mail transaction; ``recipients`` are (address, RCPT TO
        parameters).  Returns one status per recipient; raises SessionError
        when the transaction failed as a whole (MAIL, DATA, a lost
        connection) — its status is then every pending recipient's."""
        t = self.settings.timeouts
        peer = self.endpoint
        self.transactions += 1
        limit = self.size_limit()
        if limit and size > limit:
            raise SessionError(
                DeliveryStatus(
                    "5.3.4",
                    f"message size {size} exceeds size limit {limit} of server {peer.peer}",
                )
            )
        reply = await self.command(
            self.mail_command(sender, size, mail_params), t.mail, "sending MAIL FROM"
        )
        if reply.code != 250:
            raise SessionError(_said(peer, reply, "MAIL FROM"))
        results: list[DeliveryStatus | None] = []
        accepted: list[int] = []
        for n, (address, params) in enumerate(recipients):
            line = f"RCPT TO:<{address}>"
            if params and "DSN" in self.features:
                line += f" {params}"
            reply = await self.command(line, t.rcpt, "sending RCPT TO")
            if reply.code in (250, 251):
                results.append(None)
                accepted.append(n)
            else:
                results.append(_said(peer, reply, "RCPT TO"))
                if reply.code == 421:
                    # The server hung up: whoever is left shares that answer.
                    results += [_said(peer, reply, "RCPT TO")] * (len(recipients) - n - 1)
                    break
        if self.broken and accepted:
            # 421 mid-transaction: the recipients accepted so far share it.
            for n in accepted:
                results[n] = _said(peer, reply, "RCPT TO")
            return [r for r in results if r is not None]
        if not accepted:
            if not self.broken:
                await self.rset()
            return [r for r in results if r is not None]
        reply = await self.command("DATA", t.data_init, "sending DATA command")
        if reply.code != 354:
            raise SessionError(_said(peer, reply, "DATA"))
        await self._write(smtp_body(message), t.data_xfer, "sending message body")
        done_stage = "sending end of data -- message may be sent more than once"
        if self.settings.lmtp:
            for n in accepted:
                reply = await self._read(t.data_done, done_stage)
                results[n] = _result(peer, reply)
        else:
            reply = await self._read(t.data_done, done_stage)
            for n in accepted:
                results[n] = _result(peer, reply)
        return [r for r in results if r is not None]

    async def rset(self) -> bool:
        """RSET before reuse; False when the session is no longer usable."""
        if self.broken:
            return False
        try:
            reply = await self.command("RSET", self.settings.timeouts.rset, "sending RSET")
        except SessionError:
            return False
        return reply.code == 250

    async def quit(self) -> None:
        """QUIT and close; errors do not matter any more."""
        if not self.broken:
            with contextlib.suppress(SessionError):
                await self.command("QUIT", self.settings.timeouts.quit, "sending QUIT")
        self.abort()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Until the transport is gone (a TLS one needs a few loop turns)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.writer.wait_closed()

    def abort(self) -> None:
        self.broken = True
        self.writer.close()


def _result(peer: Endpoint, reply: Reply) -> DeliveryStatus:
    if 200 <= reply.code < 300:
        return DeliveryStatus(reply.dsn, reply.text)
    return _said(peer, reply, "end of DATA")


def _features(reply: Reply) -> dict[str, str]:
    """EHLO keywords (upper case) → their parameters; the first line is the
    server's name."""
    features: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper().startswith("AUTH="):
            keyword, rest = "AUTH", keyword[5:] + " " + rest
        features.setdefault(keyword.upper(), rest.strip())
    return features


__all__ = [
    "TLS_LEVELS",
    "ClientSession",
    "ClientSettings",
    "Credentials",
    "Endpoint",
    "Reply",
    "SessionError",
    "Timeouts",
    "TlsFallback",
    "smtp_body",
    "xtext",
]
