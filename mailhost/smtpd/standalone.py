"""``sendmail -bs``: one SMTP session on standard input and output.

Postfix's ``sendmail -bs`` runs smtpd(8) in stand-alone mode: the client is
``localhost[127.0.0.1]``, there is no STARTTLS and no AUTH, relay controls do
not apply (the user could have run plain ``sendmail`` anyway), and an
accepted message goes into ``maildrop`` like any other local submission, so
pickup and cleanup treat it as they treat ``sendmail`` mail — recorded from
Postfix 3.7.11: the ``250 2.0.0 Ok: queued as QID`` names the maildrop file,
pickup's ``Received: by HOST (MAIL_NAME, from userid UID)`` goes above
smtpd's own ``Received: from HELO (localhost [127.0.0.1])``, missing
``Message-Id:``/``Date:``/``From:`` are added, and the unqualified ``RCPT
TO:<bob>`` becomes ``bob@$myorigin``.

The session is mailhost's smtpd (:class:`~mailhost.smtpd.protocol.SmtpdProtocol`
with the handler and replies of ``mailhost serve``) on one end of a socket
pair; two threads copy standard input to the other end and the other end to
standard output.  smtpd's maillog lines go to syslog when ``/dev/log``
exists (as Postfix's would) and nowhere else, so standard error stays quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from mailhost.cleanup.production import StoreSink
from mailhost.cleanup.seams import ClientInfo, Submission
from mailhost.cleanup.service import Cleanup
from mailhost.config import Config
from mailhost.log import DaemonFormatter, logger
from mailhost.queue.layout import MAILDROP
from mailhost.queue.qfile import Envelope, Recipient, SubmissionKind
from mailhost.queue.store import QueueStore
from mailhost.reply import Reply
from mailhost.smtpd.handler import SmtpdHandler
from mailhost.smtpd.protocol import SmtpdProtocol
from mailhost.smtpd.settings import SmtpdSettings
from mailhost.tables.registry import TableRegistry

#: Stand-alone smtpd has neither TLS nor SASL (Postfix smtpd -S).
STANDALONE_OVERRIDES = {
    "smtpd_tls_security_level": "none",
    "smtpd_sasl_auth_enable": "no",
}


class AnyRecipient:
    """Relay controls off; pickup resolves and expands the recipients."""

    async def check_recipient(
        self, recipient: str, sender: str, client: ClientInfo, size: int = 0
    ) -> Reply | None:
        return None

    async def expand(self, recipient: str) -> Sequence[str]:
        return [recipient]


def maildrop_envelope(submission: Submission) -> Envelope:
    """A local submission's envelope: pickup and cleanup do the rest."""
    return Envelope(
        sender=submission.sender,
        recipients=tuple(Recipient(r.final, r.original) for r in submission.recipients),
        arrival_time=submission.arrival_time,
        mail_params=submission.mail_params,
        submission=SubmissionKind.LOCAL,
    )


class StandaloneProtocol(SmtpdProtocol):
    """The peer of a socket pair is no address: the client is the local host."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.peer = ("127.0.0.1", 0)

    def eof_received(self) -> bool:
        """The end of standard input.  A network client's EOF ends its session
        at once; here the commands read before it are answered first
        (``printf ... | sendmail -bs``), then the session ends as a lost
        connection would."""
        self.reader.feed_eof()
        return True


def _log_to_syslog() -> None:
    root = logger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.propagate = False
    root.setLevel(logging.INFO)
    if not Path("/dev/log").exists():
        root.addHandler(logging.NullHandler())
        return
    try:
        handler = logging.handlers.SysLogHandler(
            "/dev/log", facility=logging.handlers.SysLogHandler.LOG_MAIL
        )
    except OSError:
        root.addHandler(logging.NullHandler())
        return
    handler.setFormatter(DaemonFormatter("smtpd"))
    root.addHandler(handler)


def _copy_in(source: int, sock: socket.socket) -> None:
    """Standard input → smtpd; EOF half-closes (smtpd sees the client go)."""
    with contextlib.suppress(OSError):
        while chunk := os.read(source, 65536):
            sock.sendall(chunk)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def _copy_out(sock: socket.socket, target: int) -> None:
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            view = memoryview(chunk)
            while view:
                view = view[os.write(target, view) :]


async def _session(cfg: Config, inner: socket.socket) -> None:
    registry = TableRegistry.from_config(cfg)
    try:
        settings = SmtpdSettings.from_config(cfg)
        store = QueueStore(cfg.get("queue_directory"))
        if not (store.root / MAILDROP).is_dir():
            await store.setup()
        handler = SmtpdHandler(
            settings=settings,
            recipients=AnyRecipient(),
            cleanup=Cleanup(StoreSink(store, MAILDROP, maildrop_envelope), AnyRecipient()),
            passwords=None,
            queue_directory=cfg.get("queue_directory"),
        )
        closed = asyncio.Event()
        loop = asyncio.get_running_loop()

        def make() -> StandaloneProtocol:
            return StandaloneProtocol(handler, service="sendmail", on_close=lambda _: closed.set())

        transport, _ = await loop.connect_accepted_socket(make, sock=inner)
        try:
            await closed.wait()
        finally:
            transport.close()
            await asyncio.sleep(0)
    finally:
        await registry.close()


def run_standalone(cfg: Config, stdin: int = 0, stdout: int = 1) -> int:
    """One SMTP session between ``stdin``/``stdout`` and smtpd; exit status."""
    _log_to_syslog()
    cfg = cfg.with_overrides(STANDALONE_OVERRIDES)
    inner, outer = socket.socketpair()
    threads = [
        threading.Thread(target=_copy_in, args=(stdin, outer), daemon=True),
        threading.Thread(target=_copy_out, args=(outer, stdout), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        asyncio.run(_session(cfg, inner))
    finally:
        inner.close()
        threads[1].join(timeout=5)
        outer.close()
    return 0
