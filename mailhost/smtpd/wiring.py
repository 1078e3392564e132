"""How ``mailhost serve`` reaches the durable queue and the recipient resolver.

smtpd talks to both only through the Protocols of :mod:`mailhost.smtpd.seams`;
this module adapts the production implementations to them:

* :class:`StoreSink` puts a :class:`mailhost.queue.store.QueueStore` behind
  :class:`~mailhost.smtpd.seams.QueueSink`: ``begin()`` at the first accepted
  RCPT (the queue id comes from the new file's inode, as in Postfix), and at
  end of DATA ``commit()`` writes envelope and content and fsyncs file and
  directory before smtpd may answer 250;
* start-up runs the queue's recovery before any listener opens (incomplete
  ``incoming`` files were never acknowledged and are removed).
* :class:`ResolverPolicy` puts :class:`mailhost.resolve.resolver.Resolver`
  behind :class:`~mailhost.smtpd.seams.RecipientPolicy`; an alias expansion
  failure becomes the end-of-DATA reply it carries (``451 4.6.0`` or
  ``451 4.3.0``) with cleanup's warning logged under the queue id;
* :class:`CleanupPolicy` puts cleanup's address rewriting
  (:func:`mailhost.resolve.rewrite.cleanup_rewrite`) behind
  :class:`~mailhost.smtpd.seams.CleanupRewrite`; a table failure there is
  ``451 4.3.0 Error: queue file write error``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailhost import prefork
from mailhost.config import Config
from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.queue.qfile import Client, Envelope, Recipient
from mailhost.queue.store import QueueStore, Transaction
from mailhost.quota.rcpt import RcptQuotaCheck
from mailhost.reply import QUEUE_WRITE_ERROR, Reply
from mailhost.resolve.aliases import AliasExpansionError
from mailhost.resolve.keys import find
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.resolve.restrictions import Client as RestrictionClient
from mailhost.resolve.rewrite import RewriteError, RewriteSettings, cleanup_rewrite
from mailhost.smtpd.received import protocol_name
from mailhost.smtpd.seams import (
    AddressSearch,
    ClientInfo,
    ExpansionFailed,
    Rewritten,
    Submission,
)
from mailhost.smtpd.server import Wiring
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

log = logger("smtpd")


def queue_store(cfg: Config) -> QueueStore:
    return QueueStore(
        cfg.get("queue_directory"),
        long_ids=cfg.get_bool("enable_long_queue_ids"),
        line_length_limit=cfg.get_int("line_length_limit"),
    )


def envelope_of(submission: Submission) -> Envelope:
    """The queue's envelope for what smtpd accepted."""
    client = submission.client
    return Envelope(
        sender=submission.sender,
        recipients=tuple(Recipient(r.final, r.original) for r in submission.recipients),
        arrival_time=submission.arrival_time,
        client=Client(
            client.name,
            client.address,
            client.port,
            client.helo or "",
            protocol_name(
                esmtp=client.protocol == "ESMTP",
                tls=client.tls,
                authenticated=bool(client.sasl_username),
            ),
        ),
        sasl_method=client.sasl_method or "",
        sasl_username=client.sasl_username or "",
        mail_params=submission.mail_params,
    )


class StoreTransaction:
    def __init__(self, txn: Transaction) -> None:
        self.txn = txn

    @property
    def queue_id(self) -> str:
        return self.txn.queue_id

    async def commit(self, submission: Submission, content: Sequence[bytes]) -> int:
        return await self.txn.commit(envelope_of(submission), content)

    async def abort(self) -> None:
        await self.txn.abort()


class StoreSink:
    def __init__(self, store: QueueStore) -> None:
        self.store = store

    async def open(self) -> StoreTransaction:
        return StoreTransaction(await self.store.begin())


def store_sink(cfg: Config) -> StoreSink:
    return StoreSink(queue_store(cfg))


async def recover_queue(cfg: Config) -> None:
    """Queue recovery before the first connection (see QueueStore.recover);
    with several workers the parent has done it (mailhost.prefork)."""
    if prefork.in_worker():
        return
    report = await queue_store(cfg).recover(reactivate=False)
    if report.removed or report.corrupt:
        log.info(
            "queue recovery: %d incomplete file(s) removed, %d moved to corrupt",
            len(report.removed),
            len(report.corrupt),
        )


class ResolverPolicy:
    """The resolver behind :class:`~mailhost.smtpd.seams.RecipientPolicy`:
    ``check_rcpt`` at RCPT TO (spec 3.5), ``expand`` after DATA (spec 3.4)."""

    def __init__(self, resolver: Resolver, quota: RcptQuotaCheck | None = None) -> None:
        self.resolver = resolver
        self.quota = quota

    async def check_recipient(
        self, recipient: str, sender: str, client: ClientInfo, size: int = 0
    ) -> Reply | None:
        verdict = await self.resolver.check_rcpt(
            recipient, RestrictionClient(client.address, client.sasl_username)
        )
        if not verdict.accepted:
            return verdict.reply
        if self.quota is not None:
            # Per-mailbox quota, judged on the final mailboxes (mailhost.quota.rcpt).
            return await self.quota.check(recipient, size)
        return None

    async def expand(self, recipient: str) -> Sequence[str]:
        try:
            records = await self.resolver.expand(recipient)
        except AliasExpansionError as exc:
            raise ExpansionFailed(exc.reply, exc.log_text) from None
        return [record.final for record in records]


def address_search(cfg: Config, registry: TableRegistry) -> AddressSearch:
    """mail_addr_find(3) as the resolver implements it (spec 3.3)."""
    policy = ResolverSettings.from_config(cfg, registry).search

    async def search(maps: Maps, address: str) -> str | None:
        hit = await find(maps, address, policy)
        return hit.value if hit is not None else None

    return search


def resolver_policy(cfg: Config, registry: TableRegistry) -> ResolverPolicy:
    resolver = Resolver(ResolverSettings.from_config(cfg, registry))
    return ResolverPolicy(resolver, RcptQuotaCheck.from_config(cfg, registry, resolver))


class CleanupPolicy:
    """cleanup's address rewriting (:func:`mailhost.resolve.rewrite.cleanup_rewrite`)
    behind :class:`~mailhost.smtpd.seams.CleanupRewrite`."""

    def __init__(self, settings: RewriteSettings) -> None:
        self.settings = settings

    async def rewrite(
        self,
        queue_id: str,
        sender: str,
        recipients: Sequence[str],
        lines: list[bytes],
        client: ClientInfo,
    ) -> Rewritten:
        clients = self.settings.header_clients
        try:
            remote = clients is not None and not await clients.is_local(
                client.address, client.sasl_username
            )
            done = await cleanup_rewrite(
                self.settings, sender, recipients, lines, queue_id=queue_id, remote_headers=remote
            )
        except RewriteError as exc:
            raise ExpansionFailed(exc.reply) from None
        except TableTempFail:
            log.warning(
                "%s: local_header_rewrite_clients lookup problem for %s"
                " -- message not accepted, try again later",
                queue_id,
                client.address,
            )
            raise ExpansionFailed(QUEUE_WRITE_ERROR) from None
        return Rewritten(done.sender, done.recipients, done.lines)


def cleanup_policy(cfg: Config, registry: TableRegistry) -> CleanupPolicy:
    return CleanupPolicy(RewriteSettings.from_config(cfg, registry))


def default_wiring() -> Wiring:
    """The resolver, the durable queue, and queue recovery at start-up."""
    return Wiring(
        recipients=resolver_policy,
        queue=store_sink,
        address_search=address_search,
        startup=recover_queue,
        cleanup=cleanup_policy,
    )
