"""local(8): the ``local`` transport, final delivery for ``mydestination``
domains (spec 3.7; Postfix local(8), aliases(5)).

For each queue recipient ``user+ext@domain`` (local part folded to lower
case; ``user`` is the local part without the recipient_delimiter extension):

1. a message that already carries ``Delivered-To: ADDR`` bounces
   ``5.4.6 mail forwarding loop for ADDR``;
2. **aliases**: ``alias_maps`` is searched for ``user+ext``, then ``user``
   (an alias that lists its own name goes on to step 3, as in Sendmail; past
   100 levels ``5.4.6 alias database loop for NAME``).  Members:
   ``:include:/file`` (more members, one list per line), ``/file/name``
   (mbox append; Maildir when it ends in ``/``), ``|command`` — these two
   only when ``allow_mail_to_files`` / ``allow_mail_to_commands`` name the
   class (``alias``, ``forward``, ``include``), else ``5.7.1 mail to
   file/command is restricted`` — and addresses: a local one is delivered
   here, recursively; any other is forwarded (one new queue file per queue
   recipient and sender, after virtual alias expansion, logged
   ``to=<the alias>, ... (forwarded as QID)``).  When ``owner-NAME`` exists
   it becomes the sender of NAME's deliveries, the original recipient is
   reset, and local members are resubmitted as new queue files, as are
   local members of ``:include:`` files (recipient.c).  Files and commands
   run with the privileges of the alias database's owner, of the include
   file's owner, or of the user for ``.forward`` — never as root
   (``default_privs`` instead);
3. **.forward**: the first file of ``forward_path`` that exists
   (:mod:`mailhost.delivery.dotforward`) is expanded like an alias, class
   ``forward``; an empty or ignored file falls through to step 4;
4. **mailbox** of the system user (getpwnam): ``mailbox_command`` when set
   (as the user; as ``default_privs`` for root), else ``$HOME/$home_mailbox``
   when set, else ``mail_spool_directory/USER`` — an mbox with
   ``mailbox_delivery_lock`` locking, created 0600 and owned by the user
   (``/`` at the end of either name means Maildir).  No such user bounces
   ``5.1.1 unknown user: "user"``.

Every final delivery is logged as its own line (``to=<final>,
orig_to=<queue recipient's original>, relay=local``); ``Delivered-To:``
names the queue recipient.  The same mailbox, file, command or forwarded
address reached twice for one recipient is delivered once.  The queue
recipient's recorded result is the first deferral if any delivery deferred
(the whole recipient is then tried again), else the first bounce, else
success.

Not implemented: ``luser_relay``, ``mailbox_transport`` /
``fallback_transport``, ``local_command_shell``, ``expand_owner_alias``.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.address import split_address, split_extension
from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.delivery.command import (
    CommandTarget,
    client_environment,
    command_environment,
    run_command,
    working_directory,
)
from mailhost.delivery.dotforward import expand_forward_path, find_forward_file
from mailhost.delivery.filewriter import append_file
from mailhost.delivery.groupcommit import deliver_maildir
from mailhost.delivery.headers import delivery_headers, is_delivery_loop, loop_text
from mailhost.delivery.maildir import MaildirTarget
from mailhost.delivery.mbox import MboxTarget, deliver_mbox, from_line, lock_styles
from mailhost.delivery.pathlock import PathLocks
from mailhost.delivery.privileges import PrivilegePolicy, Privileges, myself, read_include
from mailhost.delivery.status import DeliveryStatus
from mailhost.errors import ConfigError, TableTempFail
from mailhost.log import logger
from mailhost.offload import run_blocking
from mailhost.qmgr.transport import Delivery, FinalDelivery, Job, Outcome
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.queue.store import QueueStore
from mailhost.resolve.classify import AddressClass
from mailhost.resolve.resolver import AliasExpansionError, Resolver
from mailhost.tables.base import fold_key
from mailhost.tables.maps import Maps, MapsProbe
from mailhost.tables.registry import TableRegistry
from mailhost.tables.tok822 import split_addresses

log = logger("local")
RELAY = "local"
#: local(8) gives up on nesting deeper than this (alias.c).
MAX_LEVEL = 100
ALIAS_LOOKUP_FAILED = DeliveryStatus("4.3.0", "alias database unavailable")
FORWARD_FILTER = "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class LocalSettings:
    """Every parameter local(8) reads, once."""

    alias_maps: Maps
    spool_directory: str = "/var/mail"
    home_mailbox: str = ""
    mailbox_command: str = ""
    allow_files: frozenset[str] = frozenset({"alias", "forward"})
    allow_commands: frozenset[str] = frozenset({"alias", "forward"})
    locks: tuple[str, ...] = ("fcntl", "dotlock")
    mailbox_size_limit: int = 51200000
    command_time_limit: float = 1000.0
    default_privs: str = "nobody"
    delimiters: str = ""
    owner_request_special: bool = True
    double_bounce_sender: str = "double-bounce"
    export_environment: tuple[str, ...] = ("TZ", "MAIL_CONFIG", "LANG")
    original_recipient: bool = True
    strict_ownership: bool = True
    forward_path: str = "$home/.forward${recipient_delimiter}${extension}, $home/.forward"
    forward_filter: str = FORWARD_FILTER
    queue_directory: str = ""

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry) -> LocalSettings:
        try:
            locks = lock_styles(cfg.get("mailbox_delivery_lock"))
        except ValueError as exc:
            raise ConfigError(str(exc).replace("virtual_", "")) from None
        return cls(
            alias_maps=Maps.from_value("alias_maps", cfg.get("alias_maps"), registry),
            spool_directory=cfg.get("mail_spool_directory"),
            home_mailbox=cfg.get("home_mailbox"),
            # not $name-expanded (postconf(5)): it is shell syntax
            mailbox_command=cfg.raw("mailbox_command"),
            allow_files=frozenset(split_list(cfg.get("allow_mail_to_files"))),
            allow_commands=frozenset(split_list(cfg.get("allow_mail_to_commands"))),
            locks=locks,
            mailbox_size_limit=cfg.get_int("mailbox_size_limit"),
            command_time_limit=cfg.get_time("command_time_limit"),
            default_privs=cfg.get("default_privs"),
            delimiters=cfg.get("recipient_delimiter"),
            owner_request_special=cfg.get_bool("owner_request_special"),
            double_bounce_sender=cfg.get("double_bounce_sender"),
            export_environment=tuple(cfg.get("export_environment").split()),
            original_recipient=cfg.get_bool("enable_original_recipient"),
            strict_ownership=cfg.get_bool("strict_mailbox_ownership"),
            # forward_path is expanded per recipient, not as a main.cf value
            forward_path=cfg.raw("forward_path"),
            forward_filter=cfg.get("forward_expansion_filter"),
            queue_directory=cfg.get("queue_directory"),
        )


@dataclass
class _Attempt:
    """One queue recipient being delivered: its final results, the
    duplicate filter and the addresses to forward."""

    job: Job
    rcpt: Recipient
    finals: list[FinalDelivery] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    #: (target, sender, original recipient, the address whose expansion named it)
    forward: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, address: str, status: DeliveryStatus) -> None:
        self.finals.append(FinalDelivery(address, status))

    def first_time(self, what: str) -> bool:
        if what in self.seen:
            return False
        self.seen.add(what)
        return True

    def outcome(self) -> Outcome:
        statuses = [f.status for f in self.finals]
        status = next((s for s in statuses if s.deferred), None) or next(
            (s for s in statuses if s.bounced), statuses[0]
        )
        return Outcome(status, RELAY, tuple(self.finals))


@dataclass(frozen=True)
class _Context:
    """Where a delivery comes from: sender, original recipient (X-Original-To;
    a mailing list with an ``owner-`` alias resets it, RFC 3461), nesting
    level, the alias being expanded (exp_from) and the address it was
    expanded for, the class for allow_mail_to_*, whose privileges files and
    commands get, and whether an ``owner-`` alias took over the sender."""

    sender: str
    original: str
    level: int = 0
    expanded_from: str = ""
    parent: str = ""
    origin: str = ""
    privileges: Privileges | None = None
    owner: bool = False


class LocalTransport:
    """The ``local`` transport."""

    name = "local"

    def __init__(
        self, settings: LocalSettings, resolver: Resolver, store: QueueStore | None = None
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self.store = store
        self.privileges = PrivilegePolicy(settings.default_privs)
        self.path_locks = PathLocks()

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        if job.text is not None:
            # local(8) works on the message in memory (loop checks, files,
            # commands, forwards): a body still in its spool file is read once.
            message = await run_blocking(job.text.to_bytes)
            job = dataclasses.replace(job, message=message, text=None)
        outcomes = []
        for delivery in job.deliveries:
            outcomes.append(await self.deliver_one(job, delivery))
        return outcomes

    async def deliver_one(self, job: Job, delivery: Delivery) -> Outcome:
        attempt = _Attempt(job, delivery.recipient)
        rcpt = delivery.recipient
        original = rcpt.original if self.settings.original_recipient else ""
        await self._recipient(attempt, rcpt.address, _Context(job.envelope.sender, original))
        await self._flush_forward(attempt)
        return attempt.outcome()

    # -- one address --------------------------------------------------------------------

    async def _recipient(self, att: _Attempt, address: str, ctx: _Context) -> None:
        if not att.first_time(f"recipient {ctx.level} {address.lower()}"):
            return
        if is_delivery_loop(att.job.message, address):
            att.add(address, DeliveryStatus("5.4.6", loop_text(address)))
            return
        s = self.settings
        local = fold_key(split_address(address)[0])
        user, extension = split_extension(
            local, s.delimiters,
            owner_request_special=s.owner_request_special,
            double_bounce_sender=s.double_bounce_sender,
        )  # fmt: skip
        names = [local] if extension is None else [local, user]
        for name in names:
            if await self._alias(att, address, name, ctx):
                return
        if ctx.owner or ctx.origin == "include":
            # recipient.c: a local recipient of a list with an owner- alias,
            # or from an :include: file, gets a queue file of its own.
            if att.first_time(f"forward {address.lower()}"):
                att.forward.append((address, ctx.sender, ctx.original, ctx.parent))
            return
        await self._mailbox(att, address, user, local, extension or "", ctx)

    async def _alias(self, att: _Attempt, address: str, name: str, ctx: _Context) -> bool:
        """Expand ``name`` if it is an alias; False when it is not one."""
        if ctx.expanded_from and ctx.expanded_from == name:
            return False  # an alias that lists itself: deliver to the user
        probes: list[MapsProbe] = []
        try:
            value = await self.settings.alias_maps.lookup(name, probes=probes)
            owner = None if value is None else await self._owner_alias(name)
        except TableTempFail:
            att.add(address, ALIAS_LOOKUP_FAILED)
            return True
        if value is None:
            return False
        if ctx.level > MAX_LEVEL:
            log.warning("alias database loop for %s", name)
            att.add(address, DeliveryStatus("5.4.6", f"alias database loop for {name}"))
            return True
        spec = next((p.table for p in reversed(probes) if p.value is not None), "")
        child = _Context(
            ctx.sender, ctx.original, ctx.level + 1, name, address, "alias",
            self.privileges.table_owner(spec),
        )  # fmt: skip
        if owner is not None:
            child = dataclasses.replace(child, sender=owner, original="", owner=True)
        for member in split_addresses(value):
            await self._token(att, address, member, child)
        return True

    async def _token(self, att: _Attempt, address: str, member: str, ctx: _Context) -> None:
        """One alias or include member (local(8) deliver_token)."""
        if member[:9].lower() == ":include:":
            await self._include(att, address, member[9:].strip(), ctx)
        elif member.startswith("/"):
            await self._file(att, address, member, ctx)
        elif member.startswith("|"):
            await self._command(att, address, member[1:].strip(), ctx)
        else:
            await self._address(att, address, member, ctx)

    async def _owner_alias(self, name: str) -> str | None:
        """``owner-NAME@$myorigin`` when alias_maps has ``owner-NAME``
        (owner_request_special); its deliveries then use it as sender."""
        if not self.settings.owner_request_special or name.startswith("owner-"):
            return None
        found = await self.settings.alias_maps.lookup(f"owner-{name}")
        return self.resolver.canonical(f"owner-{name}") if found is not None else None

    async def _address(self, att: _Attempt, address: str, member: str, ctx: _Context) -> None:
        """An address member: a local one is delivered here, recursively;
        any other is forwarded."""
        target = self.resolver.canonical(member)
        try:
            where = await self.resolver.classify(target)
        except TableTempFail:
            att.add(target, DeliveryStatus("4.3.0", "address resolver failure"))
            return
        if where.address_class is AddressClass.LOCAL:
            await self._recipient(att, target, ctx)
        elif att.first_time(f"forward {target.lower()}"):
            att.forward.append((target, ctx.sender, ctx.original, address))

    # -- destinations -------------------------------------------------------------------

    async def _include(self, att: _Attempt, address: str, path: str, ctx: _Context) -> None:
        if not path.startswith("/"):
            att.add(address, DeliveryStatus("5.3.5", f":include: file {path}: not absolute"))
            return
        reader = self.privileges.never_root(ctx.privileges)
        try:
            uid, text = await run_blocking(read_include, path, reader)
        except OSError as exc:
            dsn = "5.3.0" if isinstance(exc, FileNotFoundError) else "4.3.0"
            reason = f"cannot open include file {path}: {exc.strerror}"
            att.add(address, DeliveryStatus(dsn, reason))
            return
        child = dataclasses.replace(
            ctx, level=ctx.level + 1, parent=address, origin="include",
            privileges=self.privileges.of_owner(uid),
        )  # fmt: skip
        for line in text.splitlines():
            if line.strip().startswith("#"):
                continue
            for member in split_addresses(line):
                await self._token(att, address, member, child)

    async def _file(self, att: _Attempt, address: str, path: str, ctx: _Context) -> None:
        if ctx.origin not in self.settings.allow_files:
            att.add(address, DeliveryStatus("5.7.1", "mail to file is restricted"))
            return
        priv = self.privileges.never_root(ctx.privileges)
        if not att.first_time(f"file {priv.uid if priv else -1} {path}"):
            return
        async with self.path_locks.hold(path):
            status = await append_file(
                att.job.message, ctx.sender, path, att.rcpt.address, ctx.original,
                uid=priv.uid if priv else None, gid=priv.gid if priv else None,
                locks=self.settings.locks, file_size_limit=self.settings.mailbox_size_limit,
            )  # fmt: skip
        att.add(address, status)

    async def _command(self, att: _Attempt, address: str, command: str, ctx: _Context) -> None:
        if ctx.origin not in self.settings.allow_commands:
            att.add(address, DeliveryStatus("5.7.1", "mail to command is restricted"))
            return
        priv = self.privileges.never_root(ctx.privileges)
        if not att.first_time(f"command {priv.uid if priv else -1} {command}"):
            return
        att.add(address, await self._run(att, address, command, ctx, priv))

    async def _run(
        self, att: _Attempt, address: str, command: str, ctx: _Context, priv: Privileges | None
    ) -> DeliveryStatus:
        sender = ctx.sender
        local, domain = split_address(address)
        user, extension = split_extension(fold_key(local), self.settings.delimiters)
        me = priv or myself()
        # USER/LOGNAME name the recipient; HOME and SHELL come with the
        # privileges (none for default_privs), as Postfix 3.7.11 exports them.
        env = command_environment(
            home=me.home, user=user, shell=me.shell, sender=sender, recipient=address,
            original_recipient=ctx.original, local=fold_key(local), domain=domain,
            extension=(extension or "")[1:],
            export={k: os.environ[k] for k in self.settings.export_environment if k in os.environ},
            client=client_environment(att.job.envelope),
        )  # fmt: skip
        cwd = await run_blocking(working_directory, me.home, self.settings.queue_directory)
        stdin = (
            from_line(sender, time.time())
            + delivery_headers(sender, att.rcpt.address, ctx.original)
            + att.job.message.replace(b"\r\n", b"\n")
        )
        return await run_command(
            stdin,
            CommandTarget(
                command, env, me.uid if priv else None, me.gid if priv else None, cwd,
                self.settings.command_time_limit,
            ),
        )  # fmt: skip

    async def _mailbox(
        self, att: _Attempt, address: str, user: str, local: str, extension: str, ctx: _Context
    ) -> None:
        s = self.settings
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            att.add(address, DeliveryStatus("5.1.1", f'unknown user: "{user}"'))
            return
        if await self._dotforward(att, address, pw, local, extension, ctx):
            return
        if not att.first_time(f"mailbox {pw.pw_name}"):
            return
        owner = Privileges.of(pw)
        if s.mailbox_command:
            # local(8): as the recipient, but never as root (default_privs).
            priv = self.privileges.never_root(owner)
            att.add(address, await self._run(att, address, s.mailbox_command, ctx, priv))
            return
        # Delivered-To names the queue recipient, not the expanded address.
        delivered, original = att.rcpt.address, ctx.original
        if s.home_mailbox:
            # In the user's own directory: written with the user's privileges,
            # so a symlinked directory cannot make root write elsewhere.
            path = os.path.join(pw.pw_dir, s.home_mailbox.lstrip("/"))
            async with self.path_locks.hold(path):
                status = await append_file(
                    att.job.message, ctx.sender, path, delivered, original,
                    uid=pw.pw_uid, gid=pw.pw_gid, locks=s.locks,
                    file_size_limit=s.mailbox_size_limit, mailbox=True,
                )  # fmt: skip
            att.add(address, status)
            return
        where = Path(s.spool_directory) / pw.pw_name
        maildir = s.spool_directory.endswith("/")
        uid: int | None = pw.pw_uid
        gid: int | None = pw.pw_gid
        if os.geteuid() != 0 or (uid == os.geteuid() and gid == os.getegid()):
            uid = gid = None
        if maildir:
            result = await deliver_maildir(
                att.job.message, ctx.sender,
                MaildirTarget(where, delivered, original, uid, gid, Path(s.spool_directory)),
                file_size_limit=s.mailbox_size_limit,
            )  # fmt: skip
            att.add(address, result.status)
            return
        async with self.path_locks.hold(str(where)):
            # Below mail_spool_directory nothing is followed but a mailbox
            # link owned by root (safe_open(3)); local(8)'s texts and 5.2.0.
            status = await deliver_mbox(
                att.job.message, ctx.sender,
                MboxTarget(where, delivered, original, uid, gid, Path(s.spool_directory), True),
                locks=s.locks, file_size_limit=s.mailbox_size_limit,
                strict_ownership=s.strict_ownership and uid is not None,
                failed=f"cannot update mailbox {where} for user {pw.pw_name}. ", dsn="5.2.0",
            )  # fmt: skip
        att.add(address, status)

    async def _dotforward(
        self, att: _Attempt, address: str, pw: pwd.struct_passwd, local: str, extension: str,
        ctx: _Context,
    ) -> bool:  # fmt: skip
        """Expand the user's .forward file (class ``forward``, the user's
        privileges); False when there is none (or it is empty or ignored),
        or when this user's file is already being expanded."""
        s = self.settings
        if not s.forward_path or not att.first_time(f"dotforward {local}"):
            return False
        attributes = {
            "user": pw.pw_name, "home": pw.pw_dir, "shell": pw.pw_shell, "recipient": address,
            "extension": extension[1:], "domain": split_address(address)[1], "local": local,
            "recipient_delimiter": extension[:1],
        }  # fmt: skip
        paths = expand_forward_path(s.forward_path, attributes, s.forward_filter)
        try:
            found = await run_blocking(find_forward_file, paths, pw.pw_uid, pw.pw_gid)
        except OSError as exc:
            att.add(address, DeliveryStatus("4.3.0", f"cannot open forward file: {exc}"))
            return True
        if found is None or found.text is None:
            return False
        members = [
            member
            for line in found.text.splitlines()
            if not line.lstrip().startswith("#")
            for member in split_addresses(line)
        ]
        if not members:
            return False
        child = _Context(
            ctx.sender, ctx.original, ctx.level + 1, local, address, "forward", Privileges.of(pw)
        )
        for member in members:
            await self._token(att, address, member, child)
        return True

    # -- forwarding ---------------------------------------------------------------------

    async def _flush_forward(self, att: _Attempt) -> None:
        """Queue one new message for the non-local members (forward.c)."""
        if not att.forward:
            return
        by_sender: dict[str, list[tuple[str, str, str]]] = {}
        for target, sender, original, address in att.forward:
            by_sender.setdefault(sender, []).append((target, original, address))
        for sender, items in by_sender.items():
            status = await self._forward(att, sender, [(t, o) for t, o, _ in items])
            for _, _, address in items:
                att.add(address, status)

    async def _forward(
        self, att: _Attempt, sender: str, targets: list[tuple[str, str]]
    ) -> DeliveryStatus:
        """One new queue file for ``targets`` (address, original recipient;
        without one, the address itself is the original, as cleanup records)."""
        if self.store is None:
            return DeliveryStatus("4.3.0", "mail forwarding is not available")
        seen: set[tuple[str, str]] = set()
        recipients: list[Recipient] = []
        try:
            for target, original in targets:
                for r in await self.resolver.expand(target):
                    record = Recipient(r.final, original or target)
                    key = (record.original.lower(), record.address.lower())
                    if key not in seen:
                        seen.add(key)
                        recipients.append(record)
        except AliasExpansionError:
            return DeliveryStatus("4.6.0", "Alias expansion error")
        except TableTempFail:
            return DeliveryStatus("4.3.0", "address resolver failure")
        envelope = Envelope(sender, tuple(recipients), time.time(), att.job.envelope.client,
                            mail_params=att.job.envelope.mail_params)  # fmt: skip
        header = f"Delivered-To: {att.rcpt.address}\n".encode("utf-8", "surrogateescape")
        try:
            queue_id = await self.store.enqueue(envelope, [header + att.job.message])
        except OSError as exc:
            return DeliveryStatus("4.3.0", f"cannot forward: {exc.strerror or exc}")
        return DeliveryStatus("2.0.0", f"forwarded as {queue_id}")
