"""virtual(8): the ``virtual`` transport, final delivery for virtual mailbox
domains (spec 4).

For each recipient (address folded to lower case, searched with the key
sequence of spec 3.3):

* ``virtual_mailbox_maps`` gives a path relative to ``virtual_mailbox_base``;
  not found bounces ``5.1.1 unknown user: "ADDR"``, a table error defers
  ``4.3.5 mail system configuration error``;
* ``virtual_uid_maps`` / ``virtual_gid_maps`` give the owner; not found, a uid
  below ``virtual_minimum_uid`` or a gid ``<= 0`` defers 4.3.5 with virtual's
  warning.  As root, created files and directories are handed to that owner;
  not running as root (or when the maps name our own ids) we deliver as the
  current user;
* a result ending in ``/`` is a Maildir, anything else an mbox file
  (:mod:`mailhost.delivery.maildir`, :mod:`mailhost.delivery.mbox`, which add
  Return-Path, X-Original-To and Delivered-To as Postfix does);
* a path that is absolute or contains ``..`` is refused — deferred and
  logged as an error (a documented deviation from Postfix,
  :mod:`mailhost.delivery.paths`); below the base every directory is opened
  without following a symbolic link and every file created relative to its
  directory's descriptor (:mod:`mailhost.delivery.dirfd`): a link anywhere
  below the base defers the recipient with Postfix's text for a link it
  cannot follow, never writing where it points.

With ``virtual_mailbox_limit_maps`` set, Maildir deliveries are subject to
the per-mailbox quota (:mod:`mailhost.quota`, spec 6): the limit from that
map (lowered by ``mailhost_quota_domain_maps``), usage kept in Maildir++
``maildirsize`` as Dovecot keeps it; a message that does not fit bounces
``5.2.2`` (or defers ``4.2.2``, ``mailhost_quota_overquota_bounce = no``) and
crossing a ``mailhost_quota_warning_thresholds`` percentage puts a warning
into the mailbox.  A quota map outage defers 4.3.5 like the other maps.

With ``mailhost_virtual_shared_copies = yes`` the recipients of one message
whose mailboxes are Maildirs get one file, written once and hard-linked into
every ``new/`` on the same filesystem with the same owner
(:mod:`mailhost.delivery.maildir`); such a shared copy cannot carry
per-recipient headers, so it has Return-Path only — no X-Original-To or
Delivered-To — as Dovecot LMTP writes a multi-recipient delivery.  The
default (``no``) writes one file per recipient with virtual(8)'s headers.

A relative or empty ``virtual_mailbox_base`` is fatal for virtual(8) (the
agent exits and the mail stays queued): logged ``fatal: do not specify
relative pathname: ...`` and the recipient deferred.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from mailhost.config import Config
from mailhost.delivery.groupcommit import deliver_maildir, deliver_maildirs
from mailhost.delivery.maildir import HeaderMode, MaildirTarget
from mailhost.delivery.mbox import MboxTarget, deliver_mbox, lock_styles
from mailhost.delivery.pathlock import PathLocks
from mailhost.delivery.paths import MailboxPath, check_mailbox_base, mailbox_path
from mailhost.delivery.status import CONFIG_ERROR, DeliveryError, DeliveryStatus
from mailhost.errors import ConfigError, TableTempFail
from mailhost.log import logger
from mailhost.qmgr.eager import gather_eager
from mailhost.qmgr.transport import CRASHED, Delivery, Job, Outcome
from mailhost.queue.qfile import Recipient
from mailhost.quota.enforce import QuotaTarget, deliver_with_quota_locked
from mailhost.quota.maildirsize import QuotaLimits
from mailhost.quota.policy import QuotaValueError
from mailhost.quota.settings import QuotaConfig
from mailhost.resolve.keys import SearchPolicy, find
from mailhost.tables.base import fold_key
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

log = logger("virtual")
RELAY = "virtual"

# atol(): optional blanks and sign, then digits; anything else stops it.
_ATOL = re.compile(r"\s*([+-]?\d+)")


def atol(value: str) -> int:
    """C ``atol()`` as virtual(8) applies it to uid/gid map values."""
    m = _ATOL.match(value)
    return int(m.group(1)) if m else 0


@dataclass(frozen=True)
class VirtualSettings:
    """Every parameter virtual(8) reads, once."""

    mailbox_base: str
    mailbox_maps: Maps
    uid_maps: Maps
    gid_maps: Maps
    minimum_uid: int
    search: SearchPolicy
    #: virtual_mailbox_limit (RLIMIT_FSIZE in Postfix; 0 = no limit).
    mailbox_limit: int = 0
    locks: tuple[str, ...] = ("fcntl", "dotlock")
    strict_ownership: bool = True
    original_recipient: bool = True
    #: Per-mailbox quota (None: virtual_mailbox_limit_maps is empty).
    quota: QuotaConfig | None = None
    #: Host name in quota warnings.
    myhostname: str | None = None
    #: mailhost_virtual_shared_copies: one hard-linked file per message.
    shared_copies: bool = False

    @classmethod
    def from_config(
        cls, cfg: Config, registry: TableRegistry, search: SearchPolicy
    ) -> VirtualSettings:
        def maps(name: str) -> Maps:
            return Maps.from_value(name, cfg.get(name), registry)

        return cls(
            mailbox_base=cfg.get("virtual_mailbox_base"),
            mailbox_maps=maps("virtual_mailbox_maps"),
            uid_maps=maps("virtual_uid_maps"),
            gid_maps=maps("virtual_gid_maps"),
            minimum_uid=cfg.get_int("virtual_minimum_uid"),
            search=search,
            mailbox_limit=cfg.get_int("virtual_mailbox_limit"),
            locks=_locks(cfg.get("virtual_mailbox_lock")),
            strict_ownership=cfg.get_bool("strict_mailbox_ownership"),
            original_recipient=cfg.get_bool("enable_original_recipient"),
            quota=QuotaConfig.from_config(cfg, registry),
            myhostname=cfg.get("myhostname"),
            shared_copies=cfg.get_bool("mailhost_virtual_shared_copies"),
        )


def _locks(value: str) -> tuple[str, ...]:
    try:
        return lock_styles(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class _Deferred(Exception):
    """A recipient to defer with ``status`` (control flow inside deliver_one)."""

    def __init__(self, status: DeliveryStatus) -> None:
        super().__init__(status.text)
        self.status = status


@dataclass(frozen=True)
class _Prepared:
    """One recipient, looked up and ready to be written."""

    rcpt: Recipient
    where: MailboxPath
    original: str
    owner_uid: int | None
    owner_gid: int | None
    limits: QuotaLimits | None

    @property
    def target(self) -> MaildirTarget:
        return MaildirTarget(
            self.where.path, self.rcpt.address, self.original, self.owner_uid, self.owner_gid,
            self.where.base,
        )  # fmt: skip


class VirtualTransport:
    """The ``virtual`` transport."""

    name = "virtual"

    def __init__(self, settings: VirtualSettings) -> None:
        self.settings = settings
        # One delivery per mbox file (and per quota'd Maildir) at a time
        # within this process: fcntl locks belong to the process, so they
        # cannot keep two of our own threads apart on an mbox, and quota
        # accounting reads and updates maildirsize.  Plain Maildir deliveries
        # run concurrently (unique names; directories created race-free).
        # The turn is taken here, once per delivery; the quota code relies
        # on it (deliver_with_quota_locked) and adds only its flock.
        self._mailbox_locks = PathLocks()
        # Our effective ids do not change while we run (filesystem-id
        # switches are per thread and leave them alone).
        self._ids = (os.geteuid(), os.getegid())

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        try:
            check_mailbox_base(self.settings.mailbox_base)
        except ConfigError as exc:
            # virtual(8) exits with this fatal error; qmgr then defers.
            log.critical("%s", exc)
            return [Outcome(CRASHED, "none") for _ in job.deliveries]
        if len(job.deliveries) > 1:
            statuses = await self._deliver_batch(job)
            return [Outcome(status, RELAY) for status in statuses]
        return [Outcome(await self.deliver_one(job, job.deliveries[0]), RELAY)]

    async def _deliver_batch(self, job: Job) -> list[DeliveryStatus]:
        """Several recipients: the Maildir ones in one call on the offload
        pool (one trip for the whole fan-out, each copy with its own
        headers; with mailhost_virtual_shared_copies one staged file,
        hard-linked), the others one by one."""
        s = self.settings
        header_mode: HeaderMode = "shared" if s.shared_copies else "postfix"
        prepared = await gather_eager([self._prepare(job, d) for d in job.deliveries])
        statuses: list[DeliveryStatus | None] = [
            p if isinstance(p, DeliveryStatus) else None for p in prepared
        ]
        shared = [
            (i, p) for i, p in enumerate(prepared) if isinstance(p, _Prepared) and p.where.maildir
        ]
        if shared:
            # Maildir deliveries need no mailbox turn (unique names, and the
            # group commit joins concurrent ones); quota accounting does.
            locked = [p.where.path for _, p in shared] if s.quota is not None else []
            async with self._mailbox_locks.hold(*locked):
                if s.quota is not None:
                    results = await deliver_with_quota_locked(
                        job.content,
                        job.envelope.sender,
                        [QuotaTarget(p.target, p.limits) for _, p in shared],
                        s.quota.policy,
                        header_mode=header_mode,
                        file_size_limit=s.mailbox_limit,
                        hostname=s.myhostname,
                    )
                else:
                    results = await deliver_maildirs(
                        job.content,
                        job.envelope.sender,
                        [p.target for _, p in shared],
                        header_mode=header_mode,
                        file_size_limit=s.mailbox_limit,
                    )
            for (i, _), result in zip(shared, results, strict=True):
                statuses[i] = result.status
        for i, p in enumerate(prepared):
            if isinstance(p, _Prepared) and not p.where.maildir:
                async with self._mailbox_locks.hold(p.where.path):
                    statuses[i] = await self._write(job, p)
        done = [status for status in statuses if status is not None]
        if len(done) != len(statuses):  # every branch above sets one: a bug, so crash (defer)
            raise RuntimeError(f"{job.queue_id}: a recipient was left without a result")
        return done

    async def _lookup(self, maps: Maps, address: str) -> str | None:
        try:
            hit = await find(maps, address, self.settings.search)
        except TableTempFail as exc:
            log.warning("table %s: lookup %s: %s", maps.parameter, address, exc)
            raise _Deferred(CONFIG_ERROR) from exc
        return hit.value if hit is not None else None

    async def _owner(self, address: str) -> tuple[int, int]:
        s = self.settings
        uid_value = await self._lookup(s.uid_maps, address)
        if uid_value is None:
            log.warning("recipient %s: not found in virtual_uid_maps", address)
            raise _Deferred(CONFIG_ERROR)
        uid = atol(uid_value)
        if uid < s.minimum_uid:
            log.warning("recipient %s: bad uid %s in virtual_uid_maps", address, uid_value)
            raise _Deferred(CONFIG_ERROR)
        gid_value = await self._lookup(s.gid_maps, address)
        if gid_value is None:
            log.warning("recipient %s: not found in virtual_gid_maps", address)
            raise _Deferred(CONFIG_ERROR)
        gid = atol(gid_value)
        if gid <= 0:
            log.warning("recipient %s: bad gid %s in virtual_gid_maps", address, gid_value)
            raise _Deferred(CONFIG_ERROR)
        return uid, gid

    async def deliver_one(self, job: Job, delivery: Delivery) -> DeliveryStatus:
        """One recipient's result; a problem is a status, never an exception
        (other than a crash, which the queue manager turns into a deferral)."""
        prepared = await self._prepare(job, delivery)
        if isinstance(prepared, DeliveryStatus):
            return prepared
        if prepared.where.maildir and self.settings.quota is None:
            return await self._write(job, prepared)  # no turn needed (see _deliver_batch)
        async with self._mailbox_locks.hold(prepared.where.path):
            return await self._write(job, prepared)

    async def _prepare(self, job: Job, delivery: Delivery) -> DeliveryStatus | _Prepared:
        """The lookups for one recipient: where and as whom to write, or the
        status that ends its delivery (bounce or defer)."""
        s = self.settings
        rcpt = delivery.recipient
        address = fold_key(rcpt.address)
        try:
            value = await self._lookup(s.mailbox_maps, address)
            if value is None:
                return DeliveryStatus("5.1.1", f'unknown user: "{address}"')
            uid, gid = await self._owner(address)
        except _Deferred as exc:
            return exc.status
        try:
            where = mailbox_path(s.mailbox_base, value, address)
        except DeliveryError as exc:
            return exc.status
        owner_uid: int | None = uid
        owner_gid: int | None = gid
        euid, egid = self._ids
        if euid != 0 or (uid == euid and gid == egid):
            # Deliver as the current user: no ownership to hand over.
            owner_uid = owner_gid = None
        original = rcpt.original if s.original_recipient else ""
        limits: QuotaLimits | None = None
        if s.quota is not None and where.maildir:
            try:
                limits = await s.quota.limits_for(address, s.search)
            except TableTempFail as exc:
                log.warning("quota lookup %s: %s", address, exc)
                return CONFIG_ERROR
            except QuotaValueError as exc:
                log.warning("recipient %s: %s", address, exc)
                return CONFIG_ERROR
        return _Prepared(rcpt, where, original, owner_uid, owner_gid, limits)

    async def _write(self, job: Job, p: _Prepared) -> DeliveryStatus:
        """Write one recipient's copy.  Requires the mailbox turn
        (``self._mailbox_locks``) held for an mbox and a quota'd Maildir."""
        s = self.settings
        if p.where.maildir and s.quota is not None:
            (quota_result,) = await deliver_with_quota_locked(
                job.content,
                job.envelope.sender,
                [QuotaTarget(p.target, p.limits)],
                s.quota.policy,
                file_size_limit=s.mailbox_limit,
                hostname=s.myhostname,
            )
            return quota_result.status
        if p.where.maildir:
            result = await deliver_maildir(
                job.content, job.envelope.sender, p.target, file_size_limit=s.mailbox_limit
            )
            return result.status
        return await deliver_mbox(
            job.content_bytes,
            job.envelope.sender,
            MboxTarget(
                p.where.path, p.rcpt.address, p.original, p.owner_uid, p.owner_gid, p.where.base
            ),
            locks=s.locks,
            file_size_limit=s.mailbox_limit,
            strict_ownership=s.strict_ownership and p.owner_uid is not None,
        )
