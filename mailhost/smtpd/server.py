"""``mailhost serve``: the listeners of master.cf, their TLS, the per-client
connection limit, and reload/shutdown on signals.

One process plays Postfix's master(8) and its smtpd(8) children: every
``inet`` ``smtpd`` line of master.cf becomes one or more listening sockets
(one per address of ``inet_interfaces`` filtered by ``inet_protocols`` when
the line names no host), each with the Config of main.cf plus that line's
``-o`` overrides.  ``smtpd_tls_wrappermode = yes`` makes a listener speak TLS
from the first byte (``submissions``/``smtps``); otherwise STARTTLS is offered
when the TLS security level is ``may`` or ``encrypt`` and a certificate loads.

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
import os
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mailhost.cleanup.service import Cleanup
from mailhost.config import Config, load_config
from mailhost.config.mastercf import Listener, read_master_cf, smtpd_listeners
from mailhost.errors import ConfigError, MailhostError
from mailhost.log import daemon_logger, logger
from mailhost.prefork import Role
from mailhost.smtpd.etrn import FastFlush
from mailhost.smtpd.handler import SmtpdHandler
from mailhost.smtpd.protocol import SmtpdProtocol
from mailhost.smtpd.sasl import PasswordChecker
from mailhost.smtpd.seams import RecipientPolicy
from mailhost.smtpd.settings import SmtpdSettings
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


class ConnectionCounter:
    """smtpd_client_connection_count_limit per client address and service
    (Postfix anvil(8)); clients in smtpd_client_event_limit_exceptions are not
    limited."""

    def __init__(self, settings: SmtpdSettings) -> None:
        self.settings = settings
        self.counts: dict[str, int] = {}

    async def admit(self, address: str) -> int | None:
        count = self.counts.get(address, 0)
        limit = self.settings.connection_count_limit
        if (
            limit > 0
            and count >= limit
            and not await self.settings.event_limit_exceptions.match(address)
        ):
            return count
        self.counts[address] = count + 1
        return None

    def release(self, address: str) -> None:
        count = self.counts.get(address, 0) - 1
        if count > 0:
            self.counts[address] = count
        else:
            self.counts.pop(address, None)


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


@dataclass
class Generation:
    """One configuration load: its tables and the handler of each listener."""

    registry: TableRegistry
    handlers: dict[
        tuple[str, int, bool], tuple[SmtpdHandler, ssl.SSLContext | None, ConnectionCounter]
    ]
    sessions: int = 0
    retired: bool = False


@dataclass
class MailServer:
    config_dir: Path | None
    pipeline: Pipeline
    master_cf: Path | None = None
    role: Role = field(default_factory=Role)
    servers: dict[tuple[str, int, bool], list[asyncio.Server]] = field(default_factory=dict)
    protocols: set[SmtpdProtocol] = field(default_factory=set)
    generation: Generation | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set whenever no session is open (SIGTERM waits on it).
    quiet: asyncio.Event = field(default_factory=asyncio.Event)

    # -- configuration -------------------------------------------------------------

    def load(self) -> tuple[Config, list[tuple[Listener, Config]]]:
        base = load_config(self.config_dir)
        master = self.master_cf or base.config_dir / "master.cf"
        listeners = smtpd_listeners(read_master_cf(master), str(master))
        if not listeners:
            raise ConfigError(f"{master}: no inet smtpd service is defined")
        return base, [(item, base.with_overrides(item.overrides)) for item in listeners]

    def build(self, base: Config, listeners: list[tuple[Listener, Config]]) -> Generation:
        registry = TableRegistry.from_config(base)
        handlers: dict[
            tuple[str, int, bool], tuple[SmtpdHandler, ssl.SSLContext | None, ConnectionCounter]
        ] = {}
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
                        )
                    )
            stages = self.pipeline.listener(cfg, registry)
            handler = SmtpdHandler(
                settings=settings,
                recipients=stages.recipients,
                cleanup=stages.cleanup,
                checks=stages.checks,
                passwords=passwords,
                queue_directory=cfg.get("queue_directory"),
                fast_flush=FastFlush.from_config(cfg, registry),
            )
            for address in bind_addresses(listener, cfg):
                key = (address, listener.port, settings.tls_wrappermode)
                handlers[key] = (handler, context, ConnectionCounter(settings))
        return Generation(registry, handlers)

    # -- listening -----------------------------------------------------------------

    def factory(self, key: tuple[str, int, bool], service: str) -> Callable[[], SmtpdProtocol]:
        def make() -> SmtpdProtocol:
            generation = self.generation
            assert generation is not None
            handler, context, counter = generation.handlers[key]
            generation.sessions += 1

            def closed(protocol: SmtpdProtocol) -> None:
                self.protocols.discard(protocol)
                if not self.protocols:
                    self.quiet.set()
                generation.sessions -= 1
                if generation.retired and generation.sessions == 0:
                    asyncio.get_running_loop().create_task(generation.registry.close())

            protocol = SmtpdProtocol(
                handler,
                service=service,
                tls_context=context,
                wrapped=key[2],
                gate=counter,
                on_close=closed,
            )
            self.protocols.add(protocol)
            self.quiet.clear()
            return protocol

        return make

    async def listen(self, key: tuple[str, int, bool], service: str) -> None:
        address, port, wrapped = key
        assert self.generation is not None
        context = self.generation.handlers[key][1] if wrapped else None
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                self.factory(key, service),
                host=address,
                port=port,
                ssl=context,
                reuse_address=True,
                # Several workers share the port; the kernel spreads connections.
                reuse_port=self.role.worker or None,
                start_serving=True,
            )
        except OSError as exc:
            # master(8): "fatal: bind 127.0.0.1 port 25: Address already in use"
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ListenError(f"bind {address} port {port}: {reason}") from None
        self.servers[key] = [server]
        master_log.info("listening on %s port %d (service %s)", address, port, service)

    async def start(self) -> None:
        base, listeners = self.load()
        self.generation = self.build(base, listeners)
        await self.pipeline.startup(base)
        names = {}
        for listener, cfg in listeners:
            for address in bind_addresses(listener, cfg):
                names[(address, listener.port, cfg.get_bool("smtpd_tls_wrappermode"))] = (
                    listener.service
                )
        for key, service in names.items():
            await self.listen(key, service)
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
        old, self.generation = self.generation, generation
        names = {}
        for listener, cfg in listeners:
            for address in bind_addresses(listener, cfg):
                names[(address, listener.port, cfg.get_bool("smtpd_tls_wrappermode"))] = (
                    listener.service
                )
        for key in list(self.servers):
            if key not in names:
                for server in self.servers.pop(key):
                    server.close()
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
        for servers in self.servers.values():
            for server in servers:
                server.close()
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
