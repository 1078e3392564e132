"""The queue manager inside ``mailhost serve``.

Postfix's master(8) runs qmgr(8) because master.cf has a ``qmgr`` line
(``qmgr unix n - n 300 1 qmgr``); ``mailhost serve`` does the same: when the
master.cf it reads declares a service whose command is ``qmgr``, the queue
manager starts after the queue's start-up recovery (before the first
listener opens) and stops — letting deliveries in flight finish and record
their results — after the listeners closed on SIGTERM.  Without such a line
mail stays queued, as it would in Postfix.

:class:`QueueManagerService` wraps the server's
:class:`~mailhost.smtpd.server.Wiring`: its ``startup`` hook runs the
original one, then :func:`build_manager`; its queue sink hands the manager
each committed queue id to start at once (the manager also polls
``incoming`` every second, for files from other writers); ``stop`` is awaited by
:func:`mailhost.cli.serve.run_server`.  The manager reads main.cf once at
start; SIGHUP does not reconfigure it.  A ``pickup`` line starts
:class:`~mailhost.qmgr.pickup.Pickup` the same way (maildrop → incoming,
waking the queue manager after each file).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from mailhost import prefork
from mailhost.bounce.notify import BounceSettings
from mailhost.config import Config
from mailhost.config.mastercf import read_master_cf
from mailhost.log import logger
from mailhost.qmgr.inline import InlinePlan, plan_inline
from mailhost.qmgr.local import LocalSettings, LocalTransport
from mailhost.qmgr.manager import QmgrSettings, QueueManager
from mailhost.qmgr.pickup import Pickup, build_pickup, pickup_declared
from mailhost.qmgr.smtp import SmtpSettings, SmtpTransport
from mailhost.qmgr.transport import Transport, Transports, builtin_transports
from mailhost.qmgr.trigger import FLUSH, FLUSH_ID, Request, TriggerServer, site_queue_ids
from mailhost.qmgr.virtual import VirtualSettings, VirtualTransport
from mailhost.resolve.generic import GenericRewrite, GenericSettings
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.resolve.transport_maps import Router
from mailhost.smtpd.seams import InlineDelivery, QueueSink, QueueTransaction, Submission
from mailhost.smtpd.server import Wiring
from mailhost.smtpd.wiring import envelope_of, queue_store
from mailhost.tables.registry import TableRegistry

log = logger("qmgr")


def qmgr_declared(master_cf: Path) -> bool:
    """True when master.cf has a service run by the ``qmgr`` command."""
    return any(entry.program == "qmgr" for entry in read_master_cf(master_cf))


def build_manager(cfg: Config, registry: TableRegistry) -> QueueManager:
    """A queue manager for ``cfg``: the production queue, the resolver's
    address classes, transport_maps, and the transports mailhost runs."""
    settings = ResolverSettings.from_config(cfg, registry)
    resolver = Resolver(settings)
    transports: dict[str, Transport] = builtin_transports()
    virtual = VirtualTransport(VirtualSettings.from_config(cfg, registry, settings.search))
    transports[virtual.name] = virtual
    # smtp(8) twice (smtp and relay, as in Postfix's master.cf) and lmtp(8).
    for name in ("smtp", "relay", "lmtp"):
        interfaces = settings.classes.interfaces
        generic = GenericSettings.from_config(
            cfg, registry, "lmtp_generic_maps" if name == "lmtp" else "smtp_generic_maps"
        )
        transports[name] = SmtpTransport(
            SmtpSettings.from_config(cfg, registry, name, interfaces),
            rewrite=GenericRewrite(generic) if generic.maps else None,
        )
    local = LocalTransport(LocalSettings.from_config(cfg, registry), resolver, queue_store(cfg))
    transports[local.name] = local
    return QueueManager(
        queue_store(cfg),
        Router.from_config(cfg, registry, resolver),
        Transports(transports),
        QmgrSettings.from_config(cfg),
        bounce=BounceSettings.from_config(cfg),
    )


async def close_transports(manager: QueueManager) -> None:
    """Let transports that hold connections (smtp, lmtp: cached sessions)
    close them."""
    for transport in manager.transports.by_name.values():
        close = getattr(transport, "close", None)
        if close is not None:
            await close()


class WakingTransaction:
    """A queue transaction that wakes the queue manager once committed."""

    def __init__(self, txn: QueueTransaction, wake: Callable[[str], None]) -> None:
        self.txn = txn
        self.wake = wake

    @property
    def queue_id(self) -> str:
        return self.txn.queue_id

    async def commit(self, submission: Submission, content: Sequence[bytes]) -> int:
        size = await self.txn.commit(submission, content)
        self.wake(self.txn.queue_id)
        return size

    async def abort(self) -> None:
        await self.txn.abort()


class WakingSink:
    """smtpd's queue sink, with :class:`WakingTransaction` (Postfix's cleanup
    triggers qmgr through its FIFO after a file is committed)."""

    def __init__(self, sink: QueueSink, wake: Callable[[str], None]) -> None:
        self.sink = sink
        self.wake = wake

    async def open(self) -> QueueTransaction:
        return WakingTransaction(await self.sink.open(), self.wake)


class ManagerInline:
    """smtpd's inline delivery through this process's queue manager
    (:mod:`mailhost.qmgr.inline`): none while the manager is not running."""

    def __init__(self, service: QueueManagerService) -> None:
        self.service = service

    async def plan(self, submission: Submission, content: Sequence[bytes]) -> InlinePlan | None:
        manager = self.service.manager
        if manager is None:
            return None
        return await plan_inline(manager, submission.queue_id, envelope_of(submission), content)


class QueueManagerService:
    """Start/stop of the queue manager around ``mailhost serve``."""

    def __init__(self, master_cf: Path | None = None) -> None:
        self.master_cf = master_cf
        self.manager: QueueManager | None = None
        self.registry: TableRegistry | None = None
        self.trigger: TriggerServer | None = None
        self.pickup: Pickup | None = None
        self.pickup_registry: TableRegistry | None = None

    def wrap(self, wiring: Wiring) -> Wiring:
        """``wiring`` with the queue manager started after its start-up hook
        and woken by every committed message (cleanup's trigger to qmgr)."""
        original = wiring.startup
        make_sink = wiring.queue

        async def startup(cfg: Config) -> None:
            if original is not None:
                await original(cfg)
            await self.start(cfg)
            # After the queue manager's recovery, which removes temporary
            # names in incoming: pickup's file being written is not one.
            await self.start_pickup(cfg)

        def queue(cfg: Config) -> QueueSink:
            return WakingSink(make_sink(cfg), self.wake)

        def inline(cfg: Config) -> InlineDelivery | None:
            return ManagerInline(self) if cfg.get_bool("mailhost_inline_delivery") else None

        return dataclasses.replace(wiring, startup=startup, queue=queue, inline=inline)

    def wake(self, queue_id: str) -> None:
        if self.manager is not None:
            self.manager.committed(queue_id)

    async def start(self, cfg: Config) -> None:
        master_cf = self.master_cf or cfg.config_dir / "master.cf"
        if not qmgr_declared(master_cf):
            log.info("no qmgr service in %s: mail stays queued", master_cf)
            return
        registry = TableRegistry.from_config(cfg)
        manager = build_manager(cfg, registry)
        await manager.start(recover=not prefork.in_worker())
        self.registry, self.manager = registry, manager
        # postqueue -f / -i reach the manager through public/qmgr (one
        # socket per host: with several workers, worker 0's).
        if prefork.is_first_worker():
            self.trigger = TriggerServer(manager.store.root, self.flush)
            await self.trigger.start()

    async def flush(self, request: Request) -> int:
        if self.manager is None:
            return 0
        if request.kind == FLUSH:
            return len(await self.manager.flush())
        if request.kind == FLUSH_ID:
            return len(await self.manager.flush([request.argument]))
        ids = await site_queue_ids(self.manager.store, request.argument)
        return len(await self.manager.flush(ids))

    async def start_pickup(self, cfg: Config) -> None:
        """pickup(8) when master.cf declares it: maildrop → incoming (one
        pickup per host: with several workers, worker 0's)."""
        if not prefork.is_first_worker():
            return
        if not pickup_declared(self.master_cf or cfg.config_dir / "master.cf"):
            return
        self.pickup_registry = TableRegistry.from_config(cfg)
        self.pickup = build_pickup(cfg, self.pickup_registry, self.wake)
        await self.pickup.start()

    async def stop_pickup(self) -> None:
        if self.pickup is not None:
            await self.pickup.stop()
            self.pickup = None
        if self.pickup_registry is not None:
            await self.pickup_registry.close()
            self.pickup_registry = None

    async def stop(self) -> None:
        if self.trigger is not None:
            await self.trigger.close()
            self.trigger = None
        await self.stop_pickup()
        if self.manager is not None:
            await self.manager.stop()
            await close_transports(self.manager)
            self.manager = None
        if self.registry is not None:
            await self.registry.close()
            self.registry = None
