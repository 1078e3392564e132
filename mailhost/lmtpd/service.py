"""The lmtpd service in ``mailhost serve``: one master.cf line, its
listener and its sessions.

A master.cf line whose command is ``lmtpd`` starts it (first process only,
like quota-status: one listener per address)::

    127.0.0.1:24         inet  n  -  n  -  -  lmtpd
    private/lmtpd        unix  -  -  n  -  -  lmtpd

An ``inet`` service is ``[host:]port``; a ``unix`` one is a socket path,
relative to ``queue_directory`` as Postfix's ``private/`` sockets are, or
absolute.  The line's ``-o name=value`` overrides apply to its service
(``-o smtpd_timeout=60s``, ``-o virtual_mailbox_maps=...``).

What it reads (:meth:`LmtpdService.from_config`): myhostname, mail_name,
smtpd_timeout, smtpd_hard_error_limit, smtpd_recipient_limit,
message_size_limit, line_length_limit, header_size_limit and
queue_directory (the body spool) for the conversation; the resolver's
tables, transport_maps and the quota parameters for RCPT TO
(:mod:`mailhost.lmtpd.recipients`); virtual(8)'s and local(8)'s parameters
for delivery (:mod:`mailhost.lmtpd.store`).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from mailhost.config import Config
from mailhost.config.mastercf import MasterEntry, split_service
from mailhost.lmtpd.recipients import StoreRecipients
from mailhost.lmtpd.session import LmtpSession, LmtpSettings
from mailhost.lmtpd.store import Store
from mailhost.log import daemon_logger
from mailhost.offload import run_blocking
from mailhost.qmgr.local import LocalSettings, LocalTransport
from mailhost.qmgr.transport import Transport
from mailhost.qmgr.virtual import VirtualSettings, VirtualTransport
from mailhost.queue.layout import INCOMING
from mailhost.queue.store import QueueStore
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.tables.registry import TableRegistry

log = daemon_logger("lmtpd")

#: The command of its master.cf lines.
PROGRAM = "lmtpd"
#: How long a stopping service waits for sessions busy with a command.
SHUTDOWN_GRACE = 30.0


class LmtpdService:
    """See the module docstring."""

    def __init__(self, settings: LmtpSettings, recipients: StoreRecipients, store: Store) -> None:
        self.settings = settings
        self.recipients = recipients
        self.store = store
        self.servers: list[asyncio.Server] = []
        self.sessions: set[LmtpSession] = set()
        #: connections accepted since start (observability).
        self.connections = 0

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry) -> LmtpdService:
        resolver_settings = ResolverSettings.from_config(cfg, registry)
        resolver = Resolver(resolver_settings)
        virtual = VirtualTransport(
            VirtualSettings.from_config(cfg, registry, resolver_settings.search)
        )
        local = LocalTransport(
            LocalSettings.from_config(cfg, registry), resolver, QueueStore.from_config(cfg)
        )
        transports: dict[str, Transport] = {virtual.name: virtual, local.name: local}
        incoming = Path(cfg.get("queue_directory")) / INCOMING
        hard = cfg.get("smtpd_hard_error_limit").strip()
        settings = LmtpSettings(
            myhostname=cfg.get("myhostname"),
            mail_name=cfg.get("mail_name"),
            timeout=cfg.get_time("smtpd_timeout"),
            message_size_limit=cfg.get_int("message_size_limit"),
            line_length_limit=cfg.get_int("line_length_limit"),
            header_size_limit=cfg.get_int("header_size_limit"),
            spool_directory=incoming if incoming.is_dir() else None,
            hard_error_limit=int(hard) if hard.isdigit() else 20,
            recipient_limit=cfg.get_int("smtpd_recipient_limit"),
        )
        return cls(
            settings,
            StoreRecipients.from_config(cfg, registry),
            Store(transports, cfg.get_int("delay_logging_resolution_limit")),
        )

    def session(self) -> LmtpSession:
        """The protocol factory: one session per connection."""
        session = LmtpSession(self.settings, self.recipients, self.store, self.sessions.discard)
        self.sessions.add(session)
        self.connections += 1
        return session

    async def listen(self, entry: MasterEntry, queue_directory: str) -> None:
        """Open the listener of one master.cf line (``inet`` or ``unix``)."""
        loop = asyncio.get_running_loop()
        where = f"master.cf: line {entry.line}"
        if entry.type == "unix":
            path = Path(queue_directory, entry.service)
            await run_blocking(_prepare_socket, path, not Path(entry.service).is_absolute())
            server = await loop.create_unix_server(self.session, str(path))
        else:
            host, port = split_service(entry.service, where)
            server = await loop.create_server(self.session, host, port, reuse_address=True)
        self.servers.append(server)
        log.info("lmtpd service listening on %s", entry.service)

    async def close(self) -> None:
        """Stop listening; idle sessions close now, busy ones after their
        command (a message being delivered is delivered and answered)."""
        for server in self.servers:
            server.close()
        for session in list(self.sessions):
            session.begin_shutdown()
        tasks = [s.task for s in self.sessions if s.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()


def _prepare_socket(path: Path, in_queue: bool) -> None:
    """Remove a socket left by an earlier run (bind refuses an existing
    name); below queue_directory, create its directory as Postfix's
    ``private/`` is made (mode 0700: only the mail system's own user
    connects)."""
    if in_queue:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
