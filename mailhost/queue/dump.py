"""What ``postcat`` prints of a queue file: Postfix's postcat(1) layout, pure
formatting (:mod:`mailhost.cli.postcat` finds and reads the file).

Recorded from Postfix 3.7.11 (tests/queuetools/postfix_queue.json)::

    *** ENVELOPE RECORDS deferred/QID ***
    message_size:             453             854               3   (six 15-wide numbers)
    message_arrival_time: Tue Dec  1 19:07:26 2026
    named_attribute: log_ident=QID
    sender: alice@example.com
    named_attribute: log_client_name=localhost
    ...
    original_recipient: carol@remote.example
    recipient: carol@remote.example
    *** MESSAGE CONTENTS deferred/QID ***
    Received: ...
    *** HEADER EXTRACTED deferred/QID ***
    *** MESSAGE FILE END deferred/QID ***

mailhost prints the records it has under Postfix's record names: the size
record (content size, content offset, recipient count, 0, content size, 0),
arrival time, the client and SASL attributes smtpd recorded, the DSN
parameters (``dsn_envid``, ``dsn_ret``, ``dsn_notify``, ``dsn_orig_rcpt``),
``original_recipient`` and ``recipient`` — ``done_recipient`` for one already
sent or bounced, as Postfix marks them.  ``-h`` prints the header lines,
``-b`` the body (from the empty line after the header), ``-e`` the envelope;
the ``***`` lines appear with the envelope.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mailhost.queue.qfile import QueueFile
from mailhost.queue.status import DONE_STATUSES

# Postfix's DSN encodings (dsn_mask.h): NOTIFY bits and RET values.
_NOTIFY_BITS = {"NEVER": 1, "SUCCESS": 2, "FAILURE": 4, "DELAY": 8}
_RET_VALUES = {"FULL": 1, "HDRS": 2}


@dataclass(frozen=True)
class Sections:
    envelope: bool = True
    header: bool = True
    body: bool = True

    @classmethod
    def from_flags(cls, envelope: bool, header: bool, body: bool) -> Sections:
        """postcat: no -e/-h/-b means all three."""
        if not (envelope or header or body):
            return cls()
        return cls(envelope, header, body)


def _attribute(name: str, value: object) -> str:
    return f"named_attribute: {name}={value}"


def envelope_lines(
    qf: QueueFile, localtime: Callable[[float], time.struct_time] = time.localtime
) -> Iterator[str]:
    env = qf.envelope
    fields = (qf.size, qf.content_offset, len(env.recipients), 0, qf.size, 0)
    yield "message_size: " + " ".join(f"{n:>15}" for n in fields)
    yield f"message_arrival_time: {time.asctime(localtime(int(env.arrival_time)))}"
    yield _attribute("log_ident", qf.queue_id)
    if env.dsn_envid:
        yield f"dsn_envid: {env.dsn_envid}"
    if env.dsn_ret:
        yield f"dsn_ret: {_RET_VALUES[env.dsn_ret]}"
    yield f"sender: {env.sender}"
    client = env.client
    if client is not None:
        yield _attribute("log_client_name", client.name)
        yield _attribute("log_client_address", client.address)
        if client.port:
            yield _attribute("log_client_port", client.port)
        yield _attribute("log_message_origin", f"{client.name}[{client.address}]")
        if client.helo:
            yield _attribute("log_helo_name", client.helo)
        yield _attribute("log_protocol_name", client.protocol)
        yield _attribute("client_name", client.name)
        yield _attribute("client_address", client.address)
        if client.port:
            yield _attribute("client_port", client.port)
        if client.helo:
            yield _attribute("helo_name", client.helo)
        yield _attribute("protocol_name", client.protocol)
    if env.sasl_method:
        yield _attribute("sasl_method", env.sasl_method)
    if env.sasl_username:
        yield _attribute("sasl_username", env.sasl_username)
    for rcpt, result in zip(env.recipients, qf.recipient_results(), strict=True):
        if rcpt.orcpt:
            yield _attribute("dsn_orig_rcpt", rcpt.orcpt)
        if rcpt.notify:
            yield f"dsn_notify: {sum(_NOTIFY_BITS[n] for n in rcpt.notify)}"
        if rcpt.original:
            yield f"original_recipient: {rcpt.original}"
        done = result is not None and result.status in DONE_STATUSES
        yield f"{'done_recipient' if done else 'recipient'}: {rcpt.address}"


def _split(lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Header lines, and the body from the empty line on."""
    for i, line in enumerate(lines):
        if line == b"":
            return lines[:i], lines[i:]
    return lines, []


def postcat(
    qf: QueueFile,
    label: str,
    sections: Sections = Sections(),
    localtime: Callable[[float], time.struct_time] = time.localtime,
) -> bytes:
    """The postcat output for a queue file read with its content."""
    out: list[bytes] = []

    def text(line: str) -> None:
        out.append(line.encode("utf-8", "surrogateescape") + b"\n")

    header, body = _split(qf.lines())
    if sections.envelope:
        text(f"*** ENVELOPE RECORDS {label} ***")
        for line in envelope_lines(qf, localtime):
            text(line)
        text(f"*** MESSAGE CONTENTS {label} ***")
    if sections.header:
        out += [line + b"\n" for line in header]
    if sections.body:
        out += [line + b"\n" for line in body]
    if sections.envelope:
        text(f"*** HEADER EXTRACTED {label} ***")
        text(f"*** MESSAGE FILE END {label} ***")
    return b"".join(out)
