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
* a path that is absolute, contains ``..`` or resolves outside the base is
  refused — deferred and logged as an error (a documented deviation from
  Postfix, :mod:`mailhost.delivery.paths`).

A relative or empty ``virtual_mailbox_base`` is fatal for virtual(8) (the
agent exits and the mail stays queued): logged ``fatal: do not specify
relative pathname: ...`` and the recipient deferred.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailhost.config import Config
from mailhost.delivery.maildir import MaildirTarget, deliver_maildir
from mailhost.delivery.mbox import MboxTarget, deliver_mbox, lock_styles
from mailhost.delivery.paths import MailboxPath, check_mailbox_base, mailbox_path
from mailhost.delivery.status import CONFIG_ERROR, DeliveryError, DeliveryStatus
from mailhost.errors import ConfigError, TableTempFail
from mailhost.log import logger
from mailhost.qmgr.transport import CRASHED, Delivery, Job, Outcome
from mailhost.queue.qfile import Recipient
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


class VirtualTransport:
    """The ``virtual`` transport."""

    name = "virtual"

    def __init__(self, settings: VirtualSettings) -> None:
        self.settings = settings
        # One delivery per mailbox at a time within this process: fcntl locks
        # belong to the process, so they cannot keep two of our own threads
        # apart on an mbox, and creating one maildir from two threads races.
        self._mailbox_locks: dict[Path, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def _mailbox_lock(self, path: Path) -> AsyncIterator[None]:
        lock, users = self._mailbox_locks.get(path, (asyncio.Lock(), 0))
        self._mailbox_locks[path] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._mailbox_locks[path]
            if users <= 1:
                del self._mailbox_locks[path]
            else:
                self._mailbox_locks[path] = (lock, users - 1)

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        try:
            check_mailbox_base(self.settings.mailbox_base)
        except ConfigError as exc:
            # virtual(8) exits with this fatal error; qmgr then defers.
            log.critical("%s", exc)
            return [Outcome(CRASHED, "none") for _ in job.deliveries]
        # Recipients in parallel, as qmgr runs several virtual(8) processes;
        # deliveries to one mailbox still take turns (_mailbox_lock).
        statuses = await asyncio.gather(*(self.deliver_one(job, d) for d in job.deliveries))
        return [Outcome(status, RELAY) for status in statuses]

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
        if os.geteuid() != 0 or (uid == os.geteuid() and gid == os.getegid()):
            # Deliver as the current user: no ownership to hand over.
            owner_uid = owner_gid = None
        original = rcpt.original if s.original_recipient else ""
        async with self._mailbox_lock(where.path):
            return await self._write(job, rcpt, where, original, owner_uid, owner_gid)

    async def _write(
        self,
        job: Job,
        rcpt: Recipient,
        where: MailboxPath,
        original: str,
        owner_uid: int | None,
        owner_gid: int | None,
    ) -> DeliveryStatus:
        s = self.settings
        if where.maildir:
            result = await deliver_maildir(
                job.message,
                job.envelope.sender,
                MaildirTarget(where.path, rcpt.address, original, owner_uid, owner_gid),
                file_size_limit=s.mailbox_limit,
            )
            return result.status
        return await deliver_mbox(
            job.message,
            job.envelope.sender,
            MboxTarget(where.path, rcpt.address, original, owner_uid, owner_gid),
            locks=s.locks,
            file_size_limit=s.mailbox_limit,
            strict_ownership=s.strict_ownership and owner_uid is not None,
        )
