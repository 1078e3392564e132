"""mailhost's quota-status policy service: Dovecot's ``quota-status -p
postfix`` protocol answered from mailhost's own quota logic, so a Postfix
front end (``check_policy_service inet:HOST:PORT``) or another mailhost
refuses over-quota recipients at RCPT with mailhost's rules.

A master.cf line starts it in ``mailhost serve`` (the command is named
after Dovecot's program, so the line reads as what it replaces)::

    127.0.0.1:12340  inet  n  -  n  -  -  quota-status
    private/quota-status  unix  -  -  n  -  -  quota-status

Requests are Postfix policy requests (SMTPD_POLICY_README); only
``recipient`` and ``size`` are read, as Dovecot reads them.  The answer is
one ``action=...`` line and the empty line:

* no ``recipient`` → ``DUNNO`` (Dovecot's answer);
* an address mailhost does not deliver (not in a local, virtual alias or
  virtual mailbox domain, or not listed there: what reject_unlisted_recipient
  refuses) → ``mailhost_quota_status_nouser`` (Dovecot's
  ``quota_status_nouser``, default ``REJECT Unknown user``);
* every final mailbox after alias expansion full for ``size`` (1 byte when
  none is given) → ``mailhost_quota_status_toolarge`` when the message is
  larger than the whole limit and that is set, else
  ``mailhost_quota_status_overquota`` (default Dovecot's built-in
  ``554 5.2.2 Quota exceeded (mailbox for user is full)``), the same decision
  mailhost's own smtpd takes at RCPT (:mod:`mailhost.quota.rcpt`);
* otherwise ``mailhost_quota_status_success`` (default ``DUNNO``; Dovecot's
  built-in is ``OK``, which would make Postfix skip the restrictions after
  it, so Dovecot's documentation sets ``DUNNO``);
* a table failure → ``DEFER_IF_PERMIT Temporary lookup failure`` (Dovecot
  answers ``DEFER_IF_PERMIT`` and its error on a temporary failure).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from mailhost.address import external_form
from mailhost.attr_plain import ScanError, print_plain, scan_request
from mailhost.config import Config
from mailhost.config.mastercf import MasterEntry, split_service
from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.offload import run_blocking
from mailhost.quota.rcpt import RcptQuotaCheck
from mailhost.quota.settings import RefusalTemplate
from mailhost.reply import Reply
from mailhost.resolve.classify import AddressClass
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.tables.registry import TableRegistry

log = logger("quota-status")

#: The program name of its master.cf lines.
PROGRAM = "quota-status"

TEMPORARY = "DEFER_IF_PERMIT Temporary lookup failure"
_FINAL = frozenset({AddressClass.LOCAL, AddressClass.VIRTUAL_ALIAS, AddressClass.VIRTUAL_MAILBOX})
#: An idle client is dropped after this long (Dovecot's idle_kill default).
IDLE_TIMEOUT = 60.0


@dataclass(frozen=True)
class StatusAnswers:
    success: str = "DUNNO"
    nouser: str = "REJECT Unknown user"


class QuotaStatusService:
    """See the module docstring."""

    def __init__(
        self, resolver: Resolver, quota: RcptQuotaCheck | None, answers: StatusAnswers
    ) -> None:
        self.resolver = resolver
        self.quota = quota
        self.answers = answers
        self.servers: list[asyncio.Server] = []
        self.requests = 0

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry) -> QuotaStatusService:
        resolver = Resolver(ResolverSettings.from_config(cfg, registry))
        return cls(
            resolver,
            RcptQuotaCheck.from_config(cfg, registry, resolver),
            StatusAnswers(
                success=cfg.get("mailhost_quota_status_success").strip() or "DUNNO",
                nouser=cfg.get("mailhost_quota_status_nouser").strip() or "REJECT Unknown user",
            ),
        )

    async def action(self, attributes: dict[str, str]) -> str:
        """The ``action`` for one request."""
        recipient = attributes.get("recipient", "")
        if not recipient:
            return "DUNNO"
        size_text = attributes.get("size", "0")
        size = int(size_text) if size_text.isdigit() else 0
        address = self.resolver.canonical(recipient)
        try:
            found = (await self.resolver.classify(address)).address_class
            if found not in _FINAL:
                return self.answers.nouser
            if await self.resolver.unlisted_reply(address, external_form(recipient)) is not None:
                return self.answers.nouser
        except TableTempFail:
            return TEMPORARY
        if self.quota is None:
            return self.answers.success
        verdict = await self.quota.judge(recipient, size)
        if isinstance(verdict, RefusalTemplate):
            return f"{verdict.code} {verdict.status} {verdict.text}"
        if isinstance(verdict, Reply):
            return TEMPORARY
        return self.answers.success

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client: requests answered in order until it closes."""

        async def readline() -> bytes:
            try:
                line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
            except (TimeoutError, ConnectionError, ValueError):
                raise ScanError() from None
            if not line.endswith(b"\n"):
                raise ScanError(partial=line)
            return line[:-1]

        try:
            while True:
                try:
                    attributes = await scan_request(readline)
                except ScanError:
                    return
                if attributes is None:
                    return
                self.requests += 1
                writer.write(print_plain([("action", await self.action(attributes))]))
                await writer.drain()
        except ConnectionError:
            return
        finally:
            writer.close()

    async def listen(self, entry: MasterEntry, queue_directory: str) -> None:
        """Open the listener of one master.cf line (``inet`` or ``unix``)."""
        where = f"master.cf: line {entry.line}"
        if entry.type == "unix":
            path = Path(queue_directory, entry.service)
            await run_blocking(_remove_stale, path)
            server = await asyncio.start_unix_server(self.serve, str(path))
        else:
            host, port = split_service(entry.service, where)
            server = await asyncio.start_server(self.serve, host, port, reuse_address=True)
        self.servers.append(server)
        log.info("quota-status service listening on %s", entry.service)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()
        self.servers.clear()


def _remove_stale(path: Path) -> None:
    """A socket left by an earlier run (bind refuses an existing name)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
