"""The production implementations of cleanup's seams
(:mod:`mailhost.cleanup.seams`), assembled by :mod:`mailhost.master`:

* :class:`StoreSink` puts a :class:`mailhost.queue.store.QueueStore` behind
  :class:`~mailhost.cleanup.seams.QueueSink`: ``open()`` at the first
  accepted RCPT (the queue id comes from the new file's inode, as in
  Postfix), and ``commit()`` writes envelope and content and fsyncs file and
  directory before smtpd may answer 250;
* :class:`ResolverExpansion` is the resolver's virtual alias expansion; an
  expansion failure becomes the end-of-DATA reply it carries (``451 4.6.0``
  or ``451 4.3.0``) with cleanup's warning logged under the queue id;
* :class:`RewritePolicy` is cleanup's address rewriting
  (:func:`mailhost.resolve.rewrite.cleanup_rewrite`); a table failure there
  is ``451 4.3.0 Error: queue file write error``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mailhost.cleanup.seams import (
    ClientInfo,
    ExpansionFailed,
    Rewritten,
    Submission,
    protocol_name,
)
from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.queue.layout import HOLD, INCOMING
from mailhost.queue.qfile import Client, Envelope, Recipient
from mailhost.queue.store import QueueStore
from mailhost.queue.transaction import Transaction
from mailhost.reply import QUEUE_WRITE_ERROR
from mailhost.resolve.aliases import AliasExpansionError
from mailhost.resolve.resolver import Resolver
from mailhost.resolve.rewrite import RewriteError, RewriteSettings, cleanup_rewrite

log = logger("smtpd")


def envelope_of(submission: Submission) -> Envelope:
    """The queue's envelope for what smtpd accepted."""
    client = submission.client
    return Envelope(
        sender=submission.sender,
        recipients=tuple(
            Recipient(r.final, r.original, notify=r.notify) for r in submission.recipients
        ),
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
        content_filter=submission.content_filter,
        redirect=submission.redirect,
    )


class StoreTransaction:
    def __init__(self, txn: Transaction, envelope: Callable[[Submission], Envelope]) -> None:
        self.txn = txn
        self.envelope = envelope

    @property
    def queue_id(self) -> str:
        return self.txn.queue_id

    async def commit(self, submission: Submission, content: Sequence[bytes]) -> int:
        if submission.hold:
            # HOLD: the file is placed in hold instead of incoming (Postfix's
            # cleanup does the same at its final rename).
            self.txn.queue_name = HOLD
        return await self.txn.commit(self.envelope(submission), content)

    async def abort(self) -> None:
        await self.txn.abort()


class StoreSink:
    """Queue files in ``queue`` (``incoming``; ``maildrop`` for ``sendmail
    -bs``) with the envelope ``envelope`` makes of a submission."""

    def __init__(
        self,
        store: QueueStore,
        queue: str = INCOMING,
        envelope: Callable[[Submission], Envelope] = envelope_of,
    ) -> None:
        self.store = store
        self.queue = queue
        self.envelope = envelope

    async def open(self) -> StoreTransaction:
        return StoreTransaction(await self.store.begin(self.queue), self.envelope)


class ResolverExpansion:
    """The resolver's virtual alias expansion (spec 3.4)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def expand(self, recipient: str) -> Sequence[str]:
        try:
            records = await self.resolver.expand(recipient)
        except AliasExpansionError as exc:
            raise ExpansionFailed(exc.reply, exc.log_text) from None
        return [record.final for record in records]


class RewritePolicy:
    """cleanup's address rewriting (:func:`mailhost.resolve.rewrite.cleanup_rewrite`)
    behind :class:`~mailhost.cleanup.seams.CleanupRewrite`."""

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
