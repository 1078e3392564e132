"""Delivery to ``|command`` destinations, as Postfix's local(8) runs them
(local(8) EXTERNAL COMMAND DELIVERY; pipe_command.c; sys_exits.c).

The command runs under ``/bin/sh -c`` with the privileges chosen by local(8)
(the recipient for its own mailbox_command, the alias database owner or
``default_privs`` for an alias), in the user's home directory when it can
be entered, with umask 077 and a clean environment: ``PATH``, the names listed in
``export_environment`` that this process has, and HOME, LOGNAME, USER,
SHELL, SENDER, RECIPIENT, ORIGINAL_RECIPIENT, DOMAIN, LOCAL, EXTENSION
(without the delimiter), CLIENT_* and SASL_*.  Its standard input is the
message with the mbox ``From `` line, Return-Path, X-Original-To and
Delivered-To prepended (no ``>From`` quoting).

Outcome: exit 0 is ``delivered to command: CMD``; a sysexits status gets
its DSN and text (EX_TEMPFAIL and EX_OSERR defer, the others bounce); any
other status bounces ``Command died with status N: "CMD"``; a signal defers
``Command died with signal N: "CMD"``; running past ``command_time_limit``
kills the process group and bounces ``Command time limit exceeded: "CMD"``.
The command's output is appended as ``. Command output: ...``.  The process
runs on asyncio's subprocess support: the event loop never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field

from mailhost.delivery.status import DeliveryStatus
from mailhost.log import logger
from mailhost.queue.qfile import Envelope

log = logger("local")

#: Postfix's _PATH_DEFPATH for delivery commands.
DEFAULT_PATH = "/usr/bin:/bin"
SHELL = "/bin/sh"
#: How much command output goes into the reason text.
OUTPUT_LIMIT = 1000

#: sys_exits.c: status → (dsn, text); EX_TEMPFAIL and EX_OSERR are soft.
SYS_EXITS: dict[int, tuple[str, str]] = {
    64: ("5.3.0", "command line usage error"),
    65: ("5.6.0", "data format error"),
    66: ("5.3.0", "cannot open input"),
    67: ("5.1.1", "user unknown"),
    68: ("5.1.2", "host name unknown"),
    69: ("5.3.0", "service unavailable"),
    70: ("5.3.0", "internal software error"),
    71: ("4.3.0", "system resource problem"),
    72: ("5.3.0", "critical OS file missing"),
    73: ("5.2.0", "can't create user output file"),
    74: ("5.3.0", "input/output error"),
    75: ("4.3.0", "temporary failure"),
    76: ("5.5.0", "remote error in protocol"),
    77: ("5.7.0", "permission denied"),
    78: ("5.3.5", "local configuration error"),
}


@dataclass(frozen=True)
class CommandTarget:
    """One command delivery: what to run, as whom, where, with what."""

    command: str
    env: Mapping[str, str]
    #: None: run with this process's own privileges.
    uid: int | None = None
    gid: int | None = None
    cwd: str = "/"
    time_limit: float = 1000.0
    extra_groups: tuple[int, ...] = field(default_factory=tuple)


def _printable(output: bytes) -> str:
    """Postfix shows the output on one line: each non-printable character
    (the newlines too) becomes a blank, nothing is trimmed."""
    text = output[:OUTPUT_LIMIT].decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _with_output(text: str, output: bytes) -> str:
    shown = _printable(output)
    return f"{text}. Command output: {shown}" if shown else text


def exit_status(command: str, returncode: int, output: bytes) -> DeliveryStatus:
    """pipe_command()'s verdict for a finished command."""
    if returncode == 0:
        return DeliveryStatus("2.0.0", f"delivered to command: {command}")
    if returncode < 0:
        return DeliveryStatus(
            "4.3.0", _with_output(f'Command died with signal {-returncode}: "{command}"', output)
        )
    if returncode in SYS_EXITS:
        dsn, text = SYS_EXITS[returncode]
        return DeliveryStatus(dsn, _with_output(text, output))
    return DeliveryStatus(
        "5.3.0", _with_output(f'Command died with status {returncode}: "{command}"', output)
    )


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_command(stdin: bytes, target: CommandTarget) -> DeliveryStatus:
    """Run ``target.command`` with ``stdin``; the delivery status."""
    switch = target.uid is not None and os.geteuid() == 0
    try:
        proc = await asyncio.create_subprocess_exec(
            SHELL, "-c", target.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(target.env),
            cwd=target.cwd,
            start_new_session=True,
            umask=0o077,  # local(8) runs commands with umask 077
            user=target.uid if switch else None,
            group=target.gid if switch else None,
            extra_groups=list(target.extra_groups) if switch else None,
        )  # fmt: skip
    except OSError as exc:
        return DeliveryStatus("4.3.0", f"unable to execute command {target.command}: {exc}")
    try:
        async with asyncio.timeout(target.time_limit):
            output, _ = await proc.communicate(stdin)
    except TimeoutError:
        log.warning("pipe_command_read: read time limit exceeded")
        _kill_group(proc)
        output = b""
        await proc.wait()
        return DeliveryStatus("5.3.0", f'Command time limit exceeded: "{target.command}"')
    except BaseException:
        _kill_group(proc)
        raise
    assert proc.returncode is not None
    return exit_status(target.command, proc.returncode, output)


def command_environment(
    *,
    home: str,
    user: str,
    shell: str,
    sender: str,
    recipient: str,
    original_recipient: str,
    local: str,
    domain: str,
    extension: str,
    export: Mapping[str, str],
    client: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment local(8) gives a delivery command (HOME and SHELL
    only when known: not for default_privs)."""
    env = {"PATH": DEFAULT_PATH}
    env.update(export)
    if home:
        env["HOME"] = home
    if shell:
        env["SHELL"] = shell
    env.update(
        LOGNAME=user,
        USER=user,
        SENDER=sender,
        RECIPIENT=recipient,
        ORIGINAL_RECIPIENT=original_recipient or recipient,
        LOCAL=local,
        DOMAIN=domain,
    )
    if extension:
        env["EXTENSION"] = extension
    env.update(client or {})
    return env


def client_environment(envelope: Envelope) -> dict[str, str]:
    """CLIENT_ADDRESS, CLIENT_HOSTNAME, CLIENT_HELO, CLIENT_PROTOCOL and the
    SASL_* variables, when the message came with them."""
    client = envelope.client
    env: dict[str, str] = {}
    if client is not None:
        env.update(
            CLIENT_ADDRESS=client.address, CLIENT_HOSTNAME=client.name,
            CLIENT_HELO=client.helo, CLIENT_PROTOCOL=client.protocol,
        )  # fmt: skip
    if envelope.sasl_method:
        env.update(SASL_METHOD=envelope.sasl_method, SASL_USERNAME=envelope.sasl_username)
    return env


def working_directory(home: str, fallback: str) -> str:
    """local(8) runs a command in the home directory when there is one, else
    where the daemon is: the queue directory (blocking: offload it)."""
    for candidate in (home, fallback):
        if candidate and os.path.isdir(candidate):
            return candidate
    return "/"
