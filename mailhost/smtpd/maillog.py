"""smtpd's maillog lines, shaped exactly as Postfix 3.7's (spec section 8).

Pure formatting: the session hands in what happened, this module returns the
text that follows ``mailhost/smtpd[PID]: `` (the prefix comes from
:class:`mailhost.log.DaemonFormatter`).  pflogsumm and other tools parse these
lines, so every space and bracket matters; the expected strings in the tests
were recorded from a real Postfix 3.7.11 maillog.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from mailhost.address import external_form

#: smtpd.c's fixed order of the per-command counters in the disconnect line.
COMMAND_ORDER = (
    "helo", "ehlo", "xclient", "xforward", "starttls", "auth", "mail", "rcpt",
    "data", "bdat", "rset", "noop", "vrfy", "etrn", "quit", "unknown",
)  # fmt: skip


def client_name(name: str, address: str, port: int | None = None) -> str:
    """``name[addr]``, ``unknown[addr]`` without a name; ``:port`` only with
    smtpd_client_port_logging = yes."""
    text = f"{name or 'unknown'}[{address}]"
    return f"{text}:{port}" if port is not None else text


def reject_line(
    queue_id: str | None,
    stage: str,
    client: str,
    reply: str,
    *,
    sender: str | None = None,
    recipient: str | None = None,
    protocol: str = "SMTP",
    helo: str | None = None,
    action: str = "reject",
) -> str:
    """``QID|NOQUEUE: reject: STAGE from CLIENT: REPLY; from=<…> to=<…> proto=… helo=<…>``.

    ``action`` is ``reject`` or a milter's ``milter-reject``, ``milter-hold``,
    ``milter-discard``.  ``from=`` appears once MAIL FROM was given, ``to=`` when a recipient is
    known, ``helo=`` when the client sent HELO/EHLO (smtpd.c log_whatsup).
    """
    parts = [f"{queue_id or 'NOQUEUE'}: {action}: {stage} from {client}: {reply};"]
    if sender is not None:
        parts.append(f"from=<{external_form(sender)}>")
    if recipient is not None:
        parts.append(f"to=<{external_form(recipient)}>")
    parts.append(f"proto={protocol}")
    if helo is not None:
        parts.append(f"helo=<{helo}>")
    return " ".join(parts)


@dataclass
class CommandStats:
    """Per-command success/total counters for the disconnect line."""

    total: dict[str, int] = field(default_factory=dict)
    success: dict[str, int] = field(default_factory=dict)

    def count(self, command: str, ok: bool) -> None:
        self.total[command] = self.total.get(command, 0) + 1
        if ok:
            self.success[command] = self.success.get(command, 0) + 1

    def summary(self) -> str:
        """`` ehlo=1 mail=2/3 ... commands=S[/T]`` (T always shown when zero)."""
        return _summary(tuple(self.success.items()), tuple(self.total.items()))


@functools.lru_cache(maxsize=1024)
def _summary(success: tuple[tuple[str, int], ...], total: tuple[tuple[str, int], ...]) -> str:
    """format_stats() of counters as (name, count) pairs; most sessions'
    counters are alike, so their text is made once."""
    return format_stats(dict(success), dict(total))


def format_stats(success: Mapping[str, int], total: Mapping[str, int]) -> str:
    out: list[str] = []
    all_ok = all_total = 0
    for name in COMMAND_ORDER:
        tot = total.get(name, 0)
        if not tot:
            continue
        ok = success.get(name, 0)
        all_ok += ok
        all_total += tot
        out.append(f"{name}={ok}" if ok == tot else f"{name}={ok}/{tot}")
    if all_ok == all_total and all_total:
        out.append(f"commands={all_ok}")
    else:
        out.append(f"commands={all_ok}/{all_total}")
    return " ".join(out)


def disconnect_line(client: str, stats: CommandStats) -> str:
    return f"disconnect from {client} {stats.summary()}"


def printable(data: bytes, limit: int = 100) -> str:
    """Bytes as Postfix logs unexpected input: C escapes for CR/LF/TAB, octal
    for other non-printables and 8-bit bytes, at most ``limit`` input bytes."""
    out: list[str] = []
    for byte in data[:limit]:
        if byte == 0x0D:
            out.append("\\r")
        elif byte == 0x0A:
            out.append("\\n")
        elif byte == 0x09:
            out.append("\\t")
        elif byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)
