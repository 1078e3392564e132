"""master(8): the one place where ``mailhost serve`` is put together.

Postfix's master(8) reads master.cf and runs each service; here one process
(or each of ``mailhost_worker_processes`` workers, :mod:`mailhost.prefork`)
plays master and every service it runs in-process.  :class:`Master` builds
the pipeline in its order and starts and stops it:

    Config → table registry → resolver settings (once per listener
    configuration) → queue store → cleanup (+ the queue manager's inline
    delivery) → queue manager → pickup → smtpd listeners

* at start (:meth:`Master.startup`, before the first listener opens): the
  queue's recovery (in the parent when there are workers), ``/metrics`` (in
  the first process only), the queue manager when master.cf declares
  ``qmgr``, pickup when it declares ``pickup`` (first process only: two
  pickups would take the same maildrop file);
* for each configuration generation (start, and every SIGHUP) the smtpd
  server (:class:`~mailhost.smtpd.server.MailServer`) asks
  :meth:`Master.listener` for one listener's stages: the recipient check,
  cleanup, the sender-login address search;
* at stop (:meth:`Master.stop`, after the listeners closed): pickup, then
  the queue manager (deliveries in flight finish and record their result);
* the quota-status policy service (:mod:`mailhost.quota.status_service`)
  for each master.cf line running ``quota-status`` (first process only);
* the LMTP store (:mod:`mailhost.lmtpd`) for each master.cf line running
  ``lmtpd`` (first process only).

Nothing here wraps anything: what is built, and in which order, is read
from top to bottom.  Tests replace the recipient check and the queue with
their own (:class:`StageOverrides`), never by patching.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

from mailhost.bounce.notify import Bouncer, BounceSettings
from mailhost.cleanup.headers import CleanupSettings
from mailhost.cleanup.inspect import ContentChecks
from mailhost.cleanup.local import LocalCleanup
from mailhost.cleanup.production import (
    ResolverExpansion,
    RewritePolicy,
    StoreSink,
    envelope_of,
)
from mailhost.cleanup.seams import (
    InlinePlan,
    QueueSink,
    RecipientExpansion,
    Submission,
)
from mailhost.cleanup.service import Cleanup, SpoolSettings
from mailhost.config import Config, load_config
from mailhost.config.mastercf import declares, read_master_cf
from mailhost.lmtpd.service import PROGRAM as LMTPD
from mailhost.lmtpd.service import LmtpdService
from mailhost.log import logger
from mailhost.milter.settings import MilterSettings
from mailhost.offload import DEFAULT_POOL
from mailhost.pickup import Pickup
from mailhost.prefork import Role
from mailhost.qmgr.delays import Delays, delivery_line
from mailhost.qmgr.inline import plan_inline
from mailhost.qmgr.service import QueueManagerService
from mailhost.qmgr.trigger import listen_trigger
from mailhost.queue.qfile import Recipient
from mailhost.queue.spool import Content
from mailhost.queue.status import Status
from mailhost.queue.store import QueueStore
from mailhost.quota import status_service
from mailhost.quota.rcpt import RcptQuotaCheck
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.resolve.rewrite import RewriteSettings
from mailhost.smtpd.recipients import ResolverPolicy
from mailhost.smtpd.seams import RecipientPolicy
from mailhost.smtpd.server import ListenerStages
from mailhost.smtpd_check.build import smtpd_checks
from mailhost.tables.registry import TableRegistry

log = logger("smtpd")


class RecipientStage(RecipientPolicy, RecipientExpansion, Protocol):
    """A test's recipient check that also expands (identity, usually)."""


@dataclass(frozen=True)
class StageOverrides:
    """Test seams: a recipient check (also used for expansion) and a queue
    of the test's own instead of the resolver and the queue store.  A queue
    that is not the store gets no start-up recovery."""

    recipients: Callable[[Config, TableRegistry], RecipientStage] | None = None
    queue: Callable[[Config], QueueSink] | None = None


class ManagerInline:
    """Inline delivery through this process's queue manager
    (:mod:`mailhost.qmgr.inline`): none while the manager is not running."""

    def __init__(self, qmgr: QueueManagerService) -> None:
        self.qmgr = qmgr

    async def plan(self, submission: Submission, content: Content) -> InlinePlan | None:
        manager = self.qmgr.manager
        if manager is None:
            return None
        plan = await plan_inline(manager, submission.queue_id, envelope_of(submission), content)
        if plan is not None:
            plan.hand_off = self.qmgr.hand_off(len(plan.deliveries))
        return plan


class Master:
    """See the module docstring."""

    def __init__(
        self,
        config_dir: Path | None,
        master_cf: Path | None = None,
        *,
        role: Role | None = None,
        stages: StageOverrides | None = None,
    ) -> None:
        self.config_dir = config_dir
        self.master_cf_path = master_cf
        self.role = role if role is not None else Role()
        self.stages = stages if stages is not None else StageOverrides()
        self.qmgr = QueueManagerService(self.role)
        self.pickup: Pickup | None = None
        self.pickup_registry: TableRegistry | None = None
        self.quota_status: list[status_service.QuotaStatusService] = []
        #: quota-status's and lmtpd's registries by their lines' overrides.
        self.service_registries: dict[tuple[tuple[str, str], ...], TableRegistry] = {}
        self.lmtpd: list[LmtpdService] = []

    def master_cf(self, cfg: Config) -> Path:
        return self.master_cf_path or cfg.config_dir / "master.cf"

    # -- one listener of one configuration generation ---------------------------------

    def listener(self, cfg: Config, registry: TableRegistry) -> ListenerStages:
        """The stages behind one smtpd listener (its Config has the master.cf
        line's ``-o`` overrides); the resolver's settings are read once."""
        settings = ResolverSettings.from_config(cfg, registry)
        if self.stages.recipients is not None:
            # A test's recipient policy decides about recipients; the other
            # stages (client, HELO, sender, DATA) are the production ones.
            policy = self.stages.recipients(cfg, registry)
            recipients: RecipientPolicy = policy
            expansion: RecipientExpansion = policy
            checks = smtpd_checks(cfg, registry, Resolver(settings), recipient_stages=False)
        else:
            resolver = Resolver(settings)
            recipients = ResolverPolicy(
                resolver, RcptQuotaCheck.from_config(cfg, registry, resolver)
            )
            expansion = ResolverExpansion(resolver)
            checks = smtpd_checks(cfg, registry, resolver)
        queue = (
            self.stages.queue(cfg)
            if self.stages.queue is not None
            else StoreSink(QueueStore.from_config(cfg))
        )
        production = self.stages == StageOverrides()
        cleanup = Cleanup(
            queue,
            expansion,
            rewrite=RewritePolicy(RewriteSettings.from_config(cfg, registry, settings.search))
            if production
            else None,
            inline=ManagerInline(self.qmgr)
            if production and cfg.get_bool("mailhost_inline_delivery")
            else None,
            trigger=self.qmgr.wake,
            checks=ContentChecks.from_config(cfg, registry),
            content_filter=cfg.get("content_filter"),
            spool=SpoolSettings.from_config(cfg) if self.stages.queue is None else None,
        )
        return ListenerStages(recipients, cleanup, checks)

    # -- start and stop -------------------------------------------------------------

    async def startup(self, cfg: Config) -> None:
        """Run once before the first listener opens."""
        if self.role.is_first:
            from mailhost.observe.exporter import serve_metrics  # noqa: PLC0415 - prometheus_client on demand

            # One listener per host; with several workers its counters are
            # worker 0's (the queue sizes are the whole queue's).
            serve_metrics(
                cfg.get("mailhost_metrics_listen"),
                Path(cfg.get("queue_directory")),
                node=cfg.get("mailhost_node_name"),
            )
        if self.stages.queue is None:
            await self.recover(cfg)
        await self.qmgr.start(cfg, self.master_cf(cfg))
        # After the queue manager's recovery, which removes temporary
        # names in incoming: pickup's file being written is not one.
        await self.start_pickup(cfg)
        await self.start_quota_status(cfg)
        await self.start_lmtpd(cfg)

    async def start_quota_status(self, cfg: Config) -> None:
        """mailhost's quota-status policy service for each master.cf line
        whose command is ``quota-status`` (first process only: one listener
        per address)."""
        if not self.role.is_first:
            return
        entries = [
            e for e in read_master_cf(self.master_cf(cfg)) if e.program == status_service.PROGRAM
        ]
        for entry in entries:
            line_cfg = cfg.with_overrides(entry.override_map())
            registry = self.service_registry(line_cfg, entry.override_map())
            service = status_service.QuotaStatusService.from_config(line_cfg, registry)
            await service.listen(entry, line_cfg.get("queue_directory"))
            self.quota_status.append(service)

    async def start_lmtpd(self, cfg: Config) -> None:
        """mailhost's LMTP store for each master.cf line whose command is
        ``lmtpd`` (first process only: one listener per address)."""
        if not self.role.is_first:
            return
        for entry in read_master_cf(self.master_cf(cfg)):
            if entry.program != LMTPD:
                continue
            line_cfg = cfg.with_overrides(entry.override_map())
            registry = self.service_registry(line_cfg, entry.override_map())
            service = LmtpdService.from_config(line_cfg, registry)
            await service.listen(entry, line_cfg.get("queue_directory"))
            self.lmtpd.append(service)

    def service_registry(self, line_cfg: Config, overrides: dict[str, str]) -> TableRegistry:
        """The tables of a quota-status or lmtpd line: one registry (one
        lookup cache) for every such line with the same ``-o`` overrides, so
        a store's quota-status service and its lmtpd ask the database once
        for a mailbox and its limit, not once each."""
        key = tuple(sorted(overrides.items()))
        registry = self.service_registries.get(key)
        if registry is None:
            registry = TableRegistry.from_config(line_cfg)
            self.service_registries[key] = registry
        return registry

    @property
    def status_registries(self) -> list[TableRegistry]:
        """The registries of the quota-status and lmtpd services."""
        return list(self.service_registries.values())

    async def recover(self, cfg: Config) -> None:
        """Queue recovery before the first connection (QueueStore.recover);
        with several workers the parent has done it (:func:`recover_once`)."""
        if self.role.worker:
            return
        report = await QueueStore.from_config(cfg).recover(reactivate=False)
        if report.removed or report.corrupt:
            log.info(
                "queue recovery: %d incomplete file(s) removed, %d moved to corrupt",
                len(report.removed),
                len(report.corrupt),
            )

    async def start_pickup(self, cfg: Config) -> None:
        """pickup(8) when master.cf declares it: maildrop → incoming (one
        pickup per host: with several workers, worker 0's)."""
        if not self.role.is_first or not declares(self.master_cf(cfg), "pickup"):
            return
        self.pickup_registry = TableRegistry.from_config(cfg)
        self.pickup = build_pickup(cfg, self.pickup_registry, self.qmgr.wake)
        await self.pickup.start()

    async def stop(self) -> None:
        """After the listeners closed: pickup, then the queue manager."""
        await self.qmgr.close_trigger()
        for service in self.quota_status:
            await service.close()
        self.quota_status.clear()
        for lmtpd in self.lmtpd:
            await lmtpd.close()
        self.lmtpd.clear()
        for registry in self.status_registries:
            await registry.close()
        self.service_registries.clear()
        if self.pickup is not None:
            await self.pickup.stop()
            self.pickup = None
        if self.pickup_registry is not None:
            await self.pickup_registry.close()
            self.pickup_registry = None
        await self.qmgr.stop()


def build_pickup(
    cfg: Config, registry: TableRegistry, trigger: Callable[[str], None] | None = None
) -> Pickup:
    """A pickup for ``cfg``: the production queue, the resolver's alias
    expansion, cleanup's settings from main.cf."""
    settings = ResolverSettings.from_config(cfg, registry)
    store = QueueStore.from_config(cfg)
    return Pickup(
        LocalCleanup(
            store,
            ResolverExpansion(Resolver(settings)),
            CleanupSettings.from_config(cfg),
            rewrite=RewriteSettings.from_config(cfg, registry, settings.search),
            trigger=trigger,
            bounced_line=partial(bounced_line, cfg.get_int("delay_logging_resolution_limit")),
            bouncer=Bouncer(store, BounceSettings.from_config(cfg)),
            checks=ContentChecks.from_config(cfg, registry),
            content_filter=cfg.get("content_filter"),
            milters=MilterSettings.from_config(cfg, "non_smtpd_milters")
            if cfg.get("non_smtpd_milters")
            else None,
        )
    )


def bounced_line(
    resolution_limit: int, queue_id: str, recipient: Recipient, dsn: str, reason: str,
    arrival: float,
) -> str:  # fmt: skip
    """The line cleanup logs for a recipient it bounces itself (a REJECT of
    local mail), in the queue manager's format."""
    delays = Delays(time.time() - arrival, 0.0, 0.0, 0.0)
    return delivery_line(
        queue_id, recipient.address, recipient.original, relay="none", delays=delays,
        dsn=dsn, status=Status.BOUNCED, reason=reason, resolution_limit=resolution_limit,
    )  # fmt: skip


def trigger_once(config_dir: Path | None, master_cf: Path | None) -> socket.socket | None:
    """The ``public/qmgr`` socket, opened by the parent before it forks when
    master.cf declares qmgr (worker 0 serves it): ``postqueue -f`` or an
    ETRN while worker 0 is still starting waits instead of finding no
    queue manager."""
    cfg = load_config(config_dir)
    if not declares(master_cf or cfg.config_dir / "master.cf", "qmgr"):
        return None
    return listen_trigger(QueueStore.from_config(cfg).root)


def recover_once(config_dir: Path | None, master_cf: Path | None) -> None:
    """The start-up recovery every worker would otherwise do, done once in
    the parent before it forks."""
    cfg = load_config(config_dir)
    reactivate = declares(master_cf or cfg.config_dir / "master.cf", "qmgr")
    asyncio.run(QueueStore.from_config(cfg).recover(reactivate=reactivate))
    # The workers must not inherit an executor whose threads they lack.
    DEFAULT_POOL.shutdown()
