"""``mailhost serve``: the listeners of master.cf, their TLS, the per-client
anvil limits (:mod:`mailhost.smtpd.limits`), and reload/shutdown on signals.

One process plays Postfix's master(8) and its smtpd(8) children: every
``inet`` ``smtpd`` line of master.cf becomes one or more listening sockets
(one per address of ``inet_interfaces`` filtered by ``inet_protocols`` when
the line names no host), each with the Config of main.cf plus that line's
``-o`` overrides.  ``smtpd_tls_wrappermode = yes`` makes a listener speak TLS
from the first byte (``submissions``/``smtps``); otherwise STARTTLS is offered
when the TLS security level is ``may`` or ``encrypt`` and a certificate loads.

Each listener caps its service's concurrent sessions at master.cf's
``maxproc`` (``default_process_limit`` for ``-``) and all of them together
at what the open file limit allows (:mod:`mailhost.smtpd.capacity`,
:mod:`mailhost.fdlimit`, raised to the hard limit at start); a full listener
stops accepting and clients wait in the listen queue
(:mod:`mailhost.smtpd.acceptor`), as with Postfix's master(8).

SIGHUP re-reads main.cf, master.cf and the tables: new connections use the new
configuration, sessions in progress finish with the one they started with
(as Postfix's running smtpd processes do), listeners that disappeared close
and new ones open.  SIGTERM stops listening, lets busy sessions finish their
command (a message being written is completed or aborted, never half-done),
closes idle ones, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import math
import os
import signal
import socket
import ssl
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mailhost import fdlimit, maillog
from mailhost.anvil.client import Anvil
from mailhost.cleanup.service import Cleanup
from mailhost.config import Config, load_config
from mailhost.config.mastercf import Listener, MasterEntry, read_master_cf, smtpd_listeners
from mailhost.config.services import OWN_SERVICES
from mailhost.config.unused import unused_settings
from mailhost.errors import ConfigError, MailhostError
from mailhost.log import daemon_logger, logger
from mailhost.milter.settings import MilterSettings
from mailhost.prefork import ListenerKey, Role, SharedListeners
from mailhost.smtpd import heap
from mailhost.smtpd.acceptor import Acceptor, hand_over, listening_socket
from mailhost.smtpd.balance import AcceptTurn
from mailhost.smtpd.capacity import Capacity, ServiceLimit, Slot
from mailhost.smtpd.conversation import Conversation
from mailhost.smtpd.deadline import DeadlinePolicy
from mailhost.smtpd.etrn import FastFlush
from mailhost.smtpd.handler import SmtpdHandler
from mailhost.smtpd.limits import ClientLimits, LimitSettings, build_anvil
from mailhost.smtpd.protocol import SmtpdProtocol
from mailhost.smtpd.sasl import PasswordChecker
from mailhost.smtpd.seams import RecipientPolicy
from mailhost.smtpd.settings import SmtpdSettings
from mailhost.smtpd.stress import under_stress
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

log = logger("smtpd")
#: master(8)'s own lines are tagged mailhost/master[PID].
master_log = daemon_logger("master")

#: How long SIGTERM waits for busy sessions before closing them anyway.
SHUTDOWN_GRACE = 10.0


class ListenError(MailhostError):
    """A listener cannot be opened (address in use, not local, no permission)."""


@dataclass(frozen=True)
class ListenerStages:
    """What one listener's sessions hand their decisions to."""

    #: the RCPT TO verdict (the resolver and the quota, spec 3.5).
    recipients: RecipientPolicy
    #: cleanup(8): the queue file and what is stored at end of DATA.
    cleanup: Cleanup
    #: the restriction stages (None: no restrictions, a test's own policy).
    checks: SmtpdChecks | None = None


class Pipeline(Protocol):
    """The rest of the pipeline as the server sees it
    (:class:`mailhost.master.Master`)."""

    def listener(self, cfg: Config, registry: TableRegistry) -> ListenerStages:
        """The stages of one listener of a new configuration generation."""
        ...

    async def startup(self, cfg: Config) -> None:
        """Run once before the first listener opens (queue recovery, qmgr)."""
        ...


def tls_context(settings: SmtpdSettings) -> ssl.SSLContext | None:
    """The server context, or None (with Postfix's warning) when no certificate
    is configured or it cannot be loaded."""
    if not settings.offers_tls:
        return None
    if not settings.tls_cert_file:
        log.warning("TLS library problem: no server certificate (smtpd_tls_cert_file is empty)")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file or None)
    except (OSError, ssl.SSLError) as exc:
        log.warning("cannot load certificate from %s: %s", settings.tls_cert_file, exc)
        return None
    return context


def bind_addresses(listener: Listener, cfg: Config) -> list[str]:
    """The addresses to bind for one master.cf line (inet_interfaces /
    inet_protocols when the service names no host)."""
    protocols = {p.lower() for p in cfg.get_list("inet_protocols")}
    if "all" in protocols:
        protocols = {"ipv4", "ipv6"}
    if listener.host is not None:
        return [listener.host]
    out: list[str] = []
    for item in cfg.get_list("inet_interfaces"):
        lowered = item.lower()
        if lowered == "all":
            # Postfix inet_interfaces = all: every address of each enabled protocol.
            any4 = "0.0.0.0"  # noqa: S104 - the administrator asked for all interfaces
            out += ([any4] if "ipv4" in protocols else []) + (
                ["::"] if "ipv6" in protocols and socket.has_ipv6 else []
            )
        elif lowered == "loopback-only":
            out += (["127.0.0.1"] if "ipv4" in protocols else []) + (
                ["::1"] if "ipv6" in protocols and socket.has_ipv6 else []
            )
        else:
            out.append(item.strip("[]"))
    return list(dict.fromkeys(out))


def listener_names(listeners: list[tuple[Listener, Config]]) -> dict[ListenerKey, str]:
    """Every listening address of the smtpd lines, with its service name."""
    names: dict[ListenerKey, str] = {}
    for listener, cfg in listeners:
        for address in bind_addresses(listener, cfg):
            names[(address, listener.port, cfg.get_bool("smtpd_tls_wrappermode"))] = (
                listener.service
            )
    return names


def shared_listeners(config_dir: Path | None, master_cf: Path | None) -> SharedListeners:
    """The smtpd listening sockets of master.cf, opened once for every
    worker (``mailhost serve`` before it forks them).  A listener that
    cannot be opened here is left out: each worker then binds it itself and
    reports why it cannot, as without workers; so is everything when the
    configuration does not load (the workers report that)."""
    try:
        base = load_config(config_dir)
        master = master_cf or base.config_dir / "master.cf"
        entries = read_master_cf(master)
        listeners = smtpd_listeners(entries, str(master), warn=False)
        names = listener_names([(item, base.with_overrides(item.overrides)) for item in listeners])
    except MailhostError:
        return ()
    shared: list[tuple[ListenerKey, tuple[socket.socket, ...]]] = []
    for key in names:
        address, port, _ = key
        try:
            sockets = listening_socket(address, port, reuse_port=True)
        except OSError:
            continue
        shared.append((key, tuple(sockets)))
    return tuple(shared)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def process_limit(listener: Listener, cfg: Config, workers: int) -> int:
    """The session cap of one master.cf smtpd service in this process:
    maxproc (``-``: default_process_limit; 0: none), shared out among
    ``workers`` worker processes."""
    limit = listener.maxproc
    if limit is None:
        limit = cfg.get_int("default_process_limit")
    if limit > 0 and workers > 1:
        limit = math.ceil(limit / workers)
    return max(limit, 0)


@dataclass
class Generation:
    """One configuration load: its tables and the handler of each listener."""

    registry: TableRegistry
    handlers: dict[tuple[str, int, bool], tuple[SmtpdHandler, ssl.SSLContext | None, ClientLimits]]
    #: Each listener's service and its session cap.
    limits: dict[tuple[str, int, bool], ServiceLimit] = field(default_factory=dict)
    #: Each listener's smtpd_timeout policy.
    deadlines: dict[tuple[str, int, bool], DeadlinePolicy] = field(default_factory=dict)
    #: Each listener's settings and deadlines with stress = yes (Capacity).
    stressed: dict[tuple[str, int, bool], tuple[SmtpdSettings, DeadlinePolicy]] = field(
        default_factory=dict
    )
    sessions: int = 0
    retired: bool = False


@dataclass
class MailServer:
    config_dir: Path | None
    pipeline: Pipeline
    master_cf: Path | None = None
    role: Role = field(default_factory=Role)
    servers: dict[tuple[str, int, bool], list[Acceptor]] = field(default_factory=dict)
    #: Sessions against master.cf's maxproc and the open file limit.
    capacity: Capacity = field(default_factory=lambda: Capacity(fd_budget=1 << 30))
    #: master.cf as last read (the unused-parameter warnings at start).
    master_entries: list[MasterEntry] = field(default_factory=list)
    protocols: set[SmtpdProtocol] = field(default_factory=set)
    generation: Generation | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set whenever no session is open (SIGTERM waits on it).
    quiet: asyncio.Event = field(default_factory=asyncio.Event)
    #: anvil(8): this process's table, or the anvil process of the workers.
    anvil: Anvil | None = None
    #: Listening sockets the parent opened, not yet taken by a listener.
    inherited: dict[ListenerKey, tuple[socket.socket, ...]] = field(default_factory=dict)
    #: Who accepts next on the shared sockets (workers only).
    turn: AcceptTurn | None = None

    def __post_init__(self) -> None:
        self.inherited = dict(self.role.listeners)

    # -- configuration -------------------------------------------------------------

    def load(self) -> tuple[Config, list[tuple[Listener, Config]]]:
        base = load_config(self.config_dir)
        master = self.master_cf or base.config_dir / "master.cf"
        self.master_entries = read_master_cf(master)
        listeners = smtpd_listeners(self.master_entries, str(master))
        # A store node runs only lmtpd (and quota-status): no smtpd needed.
        if not listeners and not any(e.program in OWN_SERVICES for e in self.master_entries):
            raise ConfigError(f"{master}: no inet smtpd, lmtpd or quota-status service is defined")
        return base, [(item, base.with_overrides(item.overrides)) for item in listeners]

    def build(self, base: Config, listeners: list[tuple[Listener, Config]]) -> Generation:
        anvil = self.anvil = build_anvil(self.role.anvil_fd, base, self.anvil)
        registry = TableRegistry.from_config(base)
        handlers: dict[
            tuple[str, int, bool], tuple[SmtpdHandler, ssl.SSLContext | None, ClientLimits]
        ] = {}
        limits: dict[tuple[str, int, bool], ServiceLimit] = {}
        deadlines: dict[tuple[str, int, bool], DeadlinePolicy] = {}
        stressed: dict[tuple[str, int, bool], tuple[SmtpdSettings, DeadlinePolicy]] = {}
        workers = self.role.count
        for listener, cfg in listeners:
            cfg.validate()
            settings = SmtpdSettings.from_config(cfg)
            context = tls_context(settings)
            if settings.tls_wrappermode and context is None:
                raise ConfigError(
                    f"service {listener.service}: smtpd_tls_wrappermode "
                    "requires a usable certificate"
                )
            passwords = None
            if settings.sasl_auth_enable:
                if not settings.sasl_password_maps.strip():
                    log.warning(
                        "service %s: smtpd_sasl_auth_enable = yes but "
                        "mailhost_sasl_password_maps is empty; AUTH is off",
                        listener.service,
                    )
                else:
                    passwords = PasswordChecker(
                        Maps.from_value(
                            "mailhost_sasl_password_maps", settings.sasl_password_maps, registry
                        ),
                        accept_weak=cfg.get_bool("mailhost_password_accept_weak"),
                    )
            stages = self.pipeline.listener(cfg, registry)
            handler = SmtpdHandler(
                settings=settings,
                recipients=stages.recipients,
                cleanup=stages.cleanup,
                checks=stages.checks,
                passwords=passwords,
                queue_directory=cfg.get("queue_directory"),
                milters=MilterSettings.from_config(cfg) if cfg.get("smtpd_milters") else None,
                fast_flush=FastFlush.from_config(cfg, registry),
            )
            listener_deadlines = DeadlinePolicy.from_config(cfg)
            stress = under_stress(cfg, settings, listener_deadlines)
            addresses = bind_addresses(listener, cfg)
            limit = self.capacity.service(
                listener.service,
                process_limit(listener, base, workers),
                f"{listener.host}:{listener.port}" if listener.host else str(listener.port),
                local_only=all(is_loopback(a) for a in addresses),
            )
            for address in addresses:
                key = (address, listener.port, settings.tls_wrappermode)
                client_limits = ClientLimits(
                    LimitSettings.from_config(cfg, registry),
                    anvil,
                    listener.service,
                    settings.myhostname,
                )
                handlers[key] = (handler, context, client_limits)
                limits[key] = limit
                deadlines[key] = listener_deadlines
                stressed[key] = stress
        return Generation(registry, handlers, limits, deadlines, stressed)

    # -- listening -----------------------------------------------------------------

    def make_protocol(self, key: tuple[str, int, bool], service: str, slot: Slot) -> SmtpdProtocol:
        """The session of one accepted connection, under the current
        configuration; its end releases ``slot`` (once)."""
        generation = self.generation
        assert generation is not None
        handler, context, client_limits = generation.handlers[key]
        settings, deadlines = None, generation.deadlines.get(key)
        if slot.stressed and key in generation.stressed:
            settings, deadlines = generation.stressed[key]
        generation.sessions += 1
        done = False

        def closed(protocol: Conversation) -> None:
            nonlocal done
            if done:
                return
            done = True
            self.protocols.discard(protocol)
            if not self.protocols:
                self.quiet.set()
            generation.sessions -= 1
            slot.release()
            if generation.retired and generation.sessions == 0:
                asyncio.get_running_loop().create_task(generation.registry.close())

        protocol = SmtpdProtocol(
            handler,
            service=service,
            tls_context=context,
            wrapped=key[2],
            limits=client_limits,
            on_close=closed,
            deadlines=deadlines,
            settings=settings,
        )
        # The hand-over's task runs the session (acceptor.hand_over): no task of its own.
        protocol.own_task = False
        self.protocols.add(protocol)
        self.quiet.clear()
        return protocol

    def forget(self, protocol: asyncio.Protocol) -> None:
        """A session whose connection never started (TLS handshake failed)."""
        if isinstance(protocol, SmtpdProtocol) and protocol.on_close is not None:
            protocol.on_close(protocol)

    def accepted(
        self, key: tuple[str, int, bool], service: str, sock: socket.socket, slot: Slot
    ) -> Coroutine[Any, Any, None]:
        """The hand-over of an accepted connection (its task runs this
        coroutine itself: no coroutine of ours around it)."""
        generation = self.generation
        assert generation is not None
        context = generation.handlers[key][1] if key[2] else None
        return hand_over(
            sock, slot, lambda s: self.make_protocol(key, service, s), context, self.forget
        )

    async def listen(self, key: tuple[str, int, bool], service: str) -> None:
        address, port, _ = key
        assert self.generation is not None
        limit = self.generation.limits[key]
        shared = self.inherited.pop(key, None)
        turn = None
        if shared:
            # Opened once by the parent: every worker accepts on it, the
            # one the others prefer first (mailhost.smtpd.balance).
            sockets = list(shared)
            turn = self.accept_turn()
        else:
            try:
                # Workers binding on their own share the port; the kernel
                # spreads connections.
                sockets = listening_socket(address, port, reuse_port=self.role.worker)
            except OSError as exc:
                # master(8): "fatal: bind 127.0.0.1 port 25: Address already in use"
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise ListenError(f"bind {address} port {port}: {reason}") from None

        connect = functools.partial(self.accepted, key, service)
        acceptors = [Acceptor(sock, limit, self.capacity, connect, turn) for sock in sockets]
        for acceptor in acceptors:
            acceptor.start()
        self.servers[key] = acceptors
        master_log.info("listening on %s port %d (service %s)", address, port, service)

    def accept_turn(self) -> AcceptTurn | None:
        """This worker's side of who accepts on the shared sockets (one
        per process: it counts every session of the process)."""
        loads = self.role.loads
        if loads is None:
            return None
        if self.turn is None:
            capacity = self.capacity
            self.turn = AcceptTurn(loads, self.role.index, lambda: capacity.total)
            self.capacity.on_release.append(self.turn.publish)
            self.turn.publish()
        return self.turn

    def close_unused_listeners(self) -> None:
        """Shared sockets of listeners this worker does not serve (its
        configuration changed since the parent read it) are closed, so they
        do not hold connections nobody accepts."""
        for sockets in self.inherited.values():
            for sock in sockets:
                sock.close()
        self.inherited.clear()

    def budget_sessions(self) -> None:
        """The soft RLIMIT_NOFILE raised to the hard limit, and the sessions
        the descriptors leave room for (mailhost.fdlimit)."""
        nofile, problem = fdlimit.raise_nofile_limit()
        if problem is not None:
            master_log.warning("%s", problem)
        self.capacity.nofile = nofile
        self.capacity.fd_budget = fdlimit.session_budget(nofile, fdlimit.open_descriptors())

    def warn_unused(self, base: Config) -> None:
        """postconf's unused-parameter warnings, and the parameters Postfix
        has that mailhost does not implement (once, at start)."""
        master = self.master_cf or base.config_dir / "master.cf"
        for item in unused_settings(base, self.master_entries, master):
            master_log.warning("%s", item.message())

    async def start(self) -> None:
        base, listeners = self.load()
        if self.role.is_first:
            self.warn_unused(base)
        self.generation = self.build(base, listeners)
        await self.pipeline.startup(base)
        self.budget_sessions()
        names = listener_names(listeners)
        # The start-up heap is never garbage: out of the collector's way
        # before the first client (mailhost.smtpd.heap).
        heap.settle()
        try:
            for key, service in names.items():
                await self.listen(key, service)
        finally:
            self.close_unused_listeners()
        master_log.info("daemon started -- configuration %s", base.config_dir)

    async def reload(self) -> None:
        """SIGHUP: new configuration for new sessions; a broken configuration
        is reported and the running one kept."""
        try:
            base, listeners = self.load()
            generation = self.build(base, listeners)
        except ConfigError as exc:
            master_log.error("reload failed, keeping the running configuration: %s", exc)
            return
        maillog.reopen(base)  # after logrotate: a new file by the same name
        old, self.generation = self.generation, generation
        for key, acceptors in self.servers.items():
            if key in generation.limits:  # the service may have a new name or limit
                for acceptor in acceptors:
                    acceptor.service = generation.limits[key]
        names = listener_names(listeners)
        for key in list(self.servers):
            if key not in names:
                for acceptor in self.servers.pop(key):
                    acceptor.close()
        for key, service in names.items():
            if key not in self.servers:
                try:
                    await self.listen(key, service)
                except ListenError as exc:
                    master_log.error("%s", exc)
        if old is not None:
            old.retired = True
            if old.sessions == 0:
                await old.registry.close()
        master_log.info("reload -- configuration %s", base.config_dir)

    async def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        for acceptors in self.servers.values():
            for acceptor in acceptors:
                acceptor.close()
        self.servers.clear()
        for protocol in list(self.protocols):
            protocol.begin_shutdown()
        if self.protocols:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.quiet.wait()
        for protocol in list(self.protocols):
            if protocol.transport is not None:
                protocol.transport.close()
        await asyncio.sleep(0)
        if self.generation is not None:
            await self.generation.registry.close()
        if self.anvil is not None:
            await self.anvil.close()

    async def serve_forever(self) -> None:
        """Run until SIGTERM/SIGINT; SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()

        def later(coro: Awaitable[None]) -> None:
            task: asyncio.Task[None] = asyncio.ensure_future(coro)
            pending.add(task)
            task.add_done_callback(pending.discard)

        def terminate(signum: int) -> None:
            master_log.info("terminating on signal %d", signum)
            self.stopping.set()

        loop.add_signal_handler(signal.SIGHUP, lambda: later(self.reload()))
        loop.add_signal_handler(signal.SIGTERM, terminate, signal.SIGTERM)
        loop.add_signal_handler(signal.SIGINT, terminate, signal.SIGINT)
        try:
            await self.start()
            await self.stopping.wait()
        finally:
            for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await self.shutdown()
