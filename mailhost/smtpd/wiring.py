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

An installation without the resolver cannot accept mail and says so instead
of accepting mail it cannot judge.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence

from mailhost.config import Config
from mailhost.errors import ConfigError
from mailhost.log import logger
from mailhost.queue.qfile import Client, Envelope, Recipient
from mailhost.queue.store import QueueStore, Transaction
from mailhost.smtpd.received import protocol_name
from mailhost.smtpd.seams import RecipientPolicy, Submission
from mailhost.smtpd.server import Wiring
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
    """Queue recovery before the first connection (see QueueStore.recover)."""
    report = await queue_store(cfg).recover(reactivate=False)
    if report.removed or report.corrupt:
        log.info(
            "queue recovery: %d incomplete file(s) removed, %d moved to corrupt",
            len(report.removed),
            len(report.corrupt),
        )


def resolver_policy(cfg: Config, registry: TableRegistry) -> RecipientPolicy:
    """The resolver's smtpd policy (mailhost.resolve provides ``smtpd_policy``)."""
    if importlib.util.find_spec("mailhost.resolve.resolver") is None:
        raise ConfigError("mailhost serve needs the recipient resolver (mailhost.resolve.resolver)")
    module = importlib.import_module("mailhost.resolve.resolver")
    policy: RecipientPolicy = module.smtpd_policy(cfg, registry)
    return policy


def default_wiring() -> Wiring:
    if importlib.util.find_spec("mailhost.resolve.resolver") is None:
        raise ConfigError("mailhost serve needs the recipient resolver (mailhost.resolve.resolver)")
    return Wiring(recipients=resolver_policy, queue=store_sink, startup=recover_queue)
