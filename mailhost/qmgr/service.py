"""The queue manager inside ``mailhost serve``.

Postfix's master(8) runs qmgr(8) because master.cf has a ``qmgr`` line
(``qmgr unix n - n 300 1 qmgr``); :class:`mailhost.master.Master` does the
same: when the master.cf it reads declares a service whose command is
``qmgr``, :meth:`QueueManagerService.start` runs after the queue's start-up
recovery (before the first listener opens), and :meth:`QueueManagerService.stop`
lets deliveries in flight finish and record their results after the
listeners closed on SIGTERM.  Without such a line mail stays queued, as it
would in Postfix.  cleanup wakes the manager with each committed queue id
(:meth:`QueueManagerService.wake`; the manager also polls ``incoming`` every
second, for files from other writers).  The manager reads main.cf once at
start; SIGHUP does not reconfigure it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from mailhost.bounce.notify import BounceSettings
from mailhost.config import Config
from mailhost.config.mastercf import MasterEntry, declares, read_master_cf
from mailhost.log import logger
from mailhost.prefork import Role
from mailhost.qmgr.handoff import HANDOFF_COPIES, QueueHandoff
from mailhost.qmgr.local import LocalSettings, LocalTransport
from mailhost.qmgr.manager import QmgrSettings, QueueManager
from mailhost.qmgr.smtp import SmtpSettings, SmtpTransport
from mailhost.qmgr.transport import Transport, Transports, builtin_transports
from mailhost.qmgr.trigger import FLUSH, FLUSH_ID, Request, TriggerServer, site_queue_ids
from mailhost.qmgr.virtual import VirtualSettings, VirtualTransport
from mailhost.queue.store import QueueStore
from mailhost.resolve.generic import GenericRewrite, GenericSettings
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.resolve.transport_maps import Router
from mailhost.tables.registry import TableRegistry

log = logger("qmgr")


def build_manager(
    cfg: Config, registry: TableRegistry, services: Sequence[MasterEntry] = ()
) -> QueueManager:
    """A queue manager for ``cfg``: the production queue, the resolver's
    address classes, transport_maps, and the transports mailhost runs —
    also master.cf's own ``unix`` services whose command is ``smtp`` or
    ``lmtp`` (a content filter's ``scan unix - - n - 10 smtp``, with its
    ``-o`` overrides), under their service names."""
    settings = ResolverSettings.from_config(cfg, registry)
    resolver = Resolver(settings)
    transports: dict[str, Transport] = builtin_transports()
    virtual = VirtualTransport(VirtualSettings.from_config(cfg, registry, settings.search))
    transports[virtual.name] = virtual
    # smtp(8) twice (smtp and relay, as in Postfix's master.cf) and lmtp(8).
    for name in ("smtp", "relay", "lmtp"):
        interfaces = settings.classes.interfaces
        generic = GenericSettings.from_config(
            cfg,
            registry,
            "lmtp_generic_maps" if name == "lmtp" else "smtp_generic_maps",
            settings.search,
        )
        transports[name] = SmtpTransport(
            SmtpSettings.from_config(cfg, registry, name, interfaces),
            rewrite=GenericRewrite(generic) if generic.maps else None,
        )
    for entry in services:
        if entry.type != "unix" or entry.program not in ("smtp", "lmtp"):
            continue
        if entry.service in transports or entry.service in ("local", "virtual"):
            continue
        own = cfg.with_overrides(entry.override_map())
        transports[entry.service] = SmtpTransport(
            SmtpSettings.from_config(
                own, registry, entry.service, settings.classes.interfaces, program=entry.program
            )
        )
    local = LocalTransport(
        LocalSettings.from_config(cfg, registry), resolver, QueueStore.from_config(cfg)
    )
    transports[local.name] = local
    return QueueManager(
        QueueStore.from_config(cfg),
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


class QueueManagerService:
    """Start/stop of the queue manager around ``mailhost serve``."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.manager: QueueManager | None = None
        self.registry: TableRegistry | None = None
        self.trigger: TriggerServer | None = None
        self.handoff: QueueHandoff | None = None

    def wake(self, queue_id: str) -> None:
        """cleanup's trigger after a queue file is committed."""
        if self.manager is not None:
            self.manager.committed(queue_id)

    def hand_off(self, copies: int) -> Callable[[str], None] | None:
        """For a message of ``copies`` mailboxes: how to give its queue id
        to an idle worker (:mod:`mailhost.qmgr.handoff`), or None to
        deliver it inline here."""
        if self.handoff is None or copies < HANDOFF_COPIES:
            return None
        peer = self.handoff.idle_peer()
        return None if peer is None else partial(self.handoff.send, peer)

    async def start(self, cfg: Config, master_cf: Path) -> None:
        if not declares(master_cf, "qmgr"):
            log.info("no qmgr service in %s: mail stays queued", master_cf)
            return
        registry = TableRegistry.from_config(cfg)
        manager = build_manager(cfg, registry, read_master_cf(master_cf))
        await manager.start(recover=not self.role.worker)
        self.registry, self.manager = registry, manager
        self.handoff = QueueHandoff.for_role(self.role, manager.committed)
        if self.handoff is not None:
            self.handoff.listen()
        # postqueue -f / -i reach the manager through public/qmgr (one
        # socket per host: with several workers, worker 0's).
        if self.role.is_first:
            self.trigger = TriggerServer(manager.store.root, self.flush, self.role.trigger)
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

    async def close_trigger(self) -> None:
        if self.trigger is not None:
            await self.trigger.close()
            self.trigger = None

    async def stop(self) -> None:
        await self.close_trigger()
        if self.handoff is not None:
            self.handoff.close()  # what others send now waits in incoming
            self.handoff = None
        if self.manager is not None:
            await self.manager.stop()
            await close_transports(self.manager)
            self.manager = None
        if self.registry is not None:
            await self.registry.close()
            self.registry = None
