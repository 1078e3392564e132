"""The queue file format: one file per message, holding the envelope, the
message content (with smtpd's ``Received:`` header) and the results of
delivery attempts.  Written once by the receiving side (smtpd, pickup), read
by the queue manager, delivery agents, ``mailq``/``postqueue -j``/``qshape``
and ``postsuper``.

Postfix keeps its own binary record format (record type, length, data); ours
is a documented, versioned text-framed format with the same properties —
length-framed so message lines that look like records are never interpreted,
and checksummed so a truncated or garbled file is always recognised as
corrupt, never half-delivered.  No pickle: every field has a name in JSON.

Layout, version 1 (``LF`` = one ``\\n`` byte; numbers in decimal)::

    MAILHOST-QUEUE-FILE 1 LF                 magic and format version
    E <n> <crc32> LF <n bytes: envelope JSON> LF
    M <n> LF <n bytes: content> LF           content lines, each ending in LF
    X <offset> <sha256> LF                   end record: the commit marker
    S <n> <crc32> LF <n bytes: status JSON> LF    zero or more, appended later

* ``E``: the envelope as one JSON object (field names below), ``crc32`` in
  8 lower-case hex digits over the JSON bytes.
* ``M``: the message content: every content line (without its line end) is
  stored followed by ``LF``; a delivery agent writes LF (Maildir, mbox) or
  CRLF (SMTP) as its protocol wants.
* ``X``: ``offset`` is the byte length of everything before this record and
  ``sha256`` (64 hex digits) its digest.  A file without a valid end record is
  incomplete; one whose digest does not match is garbled.  Both are corrupt.
* ``S``: per-recipient results and scheduling, appended by the queue manager
  after each delivery attempt (one ``write`` + ``fsync``, no rename: cheap and
  durable).  A crash in the middle of an append leaves a torn last record;
  readers ignore it (it was never acknowledged), and the next appender first
  truncates the file to the end of the last complete record.

Status record kinds (the JSON ``kind``): ``rcpt`` (one recipient's result),
``schedule`` (next attempt), ``expire`` (queue lifetime or ``postsuper -e``),
and ``notice`` (added later, carrying its own ``version``): a notification
(non-delivery or delay) was queued for the listed recipients, so it is not
sent again after a restart.  Files without ``notice`` records read exactly
as before; a reader that predates the kind rejects such a file as corrupt
rather than misreading it, and a ``notice`` of a newer version than this
reader knows is rejected the same way.

The envelope's ``size`` is the message size exactly as Postfix counts it for
``mailq``, ``postqueue -j`` and ``from=<>, size=N`` (spec 7.2, 8): the bytes of
the content records in a Postfix queue file — each line, read in pieces of
``line_length_limit`` bytes (a full piece is a continuation record, the rest
up to the line end another record, possibly empty), each record costing one
type byte, its length in 7-bit groups, and its data (Postfix rec_put()).  For
lines under 128 bytes that is the line plus two, the same as counting CRLF
line ends.  Checked against ``postqueue -j`` of Postfix 3.7.11 for lines of
127 to 20000 bytes (tests/queue/test_qfile.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, BinaryIO

from mailhost.errors import MailhostError
from mailhost.queue.status import (
    DONE_STATUSES,
    Expire,
    Notice,
    RecipientStatus,
    Schedule,
    Status,
    StatusRecord,
)

MAGIC = b"MAILHOST-QUEUE-FILE"
VERSION = 1
#: Postfix's line_length_limit default, used for the size computation.
LINE_LENGTH_LIMIT = 2048


class SubmissionKind(StrEnum):
    """What cleanup still has to do to a file in ``maildrop`` (Postfix's
    rewrite context): a ``sendmail`` submission gets the local treatment
    (missing headers added, header addresses qualified), ``sendmail -G`` the
    gateway one (neither); everything else has had cleanup already."""

    NONE = ""
    LOCAL = "local"
    GATEWAY = "gateway"


def submission_kind(value: str) -> SubmissionKind:
    """The kind named ``value``; ValueError for anything else."""
    try:
        return SubmissionKind(value)
    except ValueError:
        raise ValueError(f"invalid submission kind: {value}") from None


_DSN_NOTIFY = frozenset({"NEVER", "SUCCESS", "FAILURE", "DELAY"})
# The longest header/record line we accept before deciding a file is garbage.
_MAX_RECORD_HEADER = 200


class CorruptQueueFile(MailhostError):
    """A queue file that is incomplete (crash while it was written) or garbled.
    Never delivered; the store moves it to the ``corrupt`` queue."""


# -- the envelope ---------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """One envelope recipient.

    ``address`` is where the message goes (after virtual alias expansion),
    ``original`` the address the client gave at RCPT TO (Postfix's orig_rcpt,
    logged as ``orig_to=<>``); ``notify`` and ``orcpt`` are the RFC 3461 DSN
    parameters of that RCPT TO (empty when not given).
    """

    address: str
    original: str = ""
    notify: tuple[str, ...] = ()
    orcpt: str = ""

    def __post_init__(self) -> None:
        if not self.notify:
            return  # the usual recipient: nothing to check
        bad = [n for n in self.notify if n not in _DSN_NOTIFY]
        if bad or ("NEVER" in self.notify and len(self.notify) > 1):
            raise ValueError(f"invalid DSN NOTIFY value: {','.join(self.notify)}")


@dataclass(frozen=True)
class Client:
    """The SMTP client, as smtpd's ``client=`` log line and the Received:
    header name it; ``protocol`` is ``SMTP``, ``ESMTP``, ``ESMTPSA``, ..."""

    name: str
    address: str
    port: int = 0
    helo: str = ""
    protocol: str = "ESMTP"


@dataclass(frozen=True)
class Envelope:
    """Everything about a message except its content.  ``sender`` is ``""``
    for the null sender; ``arrival_time`` is seconds since the epoch."""

    sender: str
    recipients: tuple[Recipient, ...]
    arrival_time: float
    client: Client | None = None
    sasl_method: str = ""
    sasl_username: str = ""
    #: RFC 3461 ENVID and RET of MAIL FROM ("" when not given).
    dsn_envid: str = ""
    dsn_ret: str = ""
    #: other MAIL FROM parameters delivery needs (``BODY``, ``SMTPUTF8``).
    mail_params: tuple[tuple[str, str], ...] = ()
    #: the sender's full name from ``sendmail -F`` / ``$NAME`` / the password
    #: file (Postfix's sender_fullname record); cleanup uses it for a missing
    #: ``From:`` header.  Empty for SMTP mail.
    full_name: str = ""
    #: a ``sendmail`` submission in ``maildrop`` that pickup has not yet given
    #: cleanup's treatment (mailhost.cleanup.headers), see SubmissionKind.
    submission: SubmissionKind = SubmissionKind.NONE
    #: ``transport:nexthop`` of the content filter (main.cf content_filter,
    #: a FILTER action); the queue manager sends every recipient there
    #: (Postfix's REC_TYPE_FILT record).  Empty: none.
    content_filter: str = ""
    #: a REDIRECT action's address: every recipient goes there instead
    #: (Postfix's REC_TYPE_RDR record).  Empty: none.
    redirect: str = ""

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ValueError("an envelope needs at least one recipient")
        if self.dsn_ret not in ("", "FULL", "HDRS"):
            raise ValueError(f"invalid DSN RET value: {self.dsn_ret}")
        if not isinstance(self.submission, SubmissionKind):  # a name: check and convert
            object.__setattr__(self, "submission", submission_kind(self.submission))


# -- the parsed file ------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFile:
    """A parsed, verified queue file."""

    queue_id: str
    envelope: Envelope
    size: int
    content_offset: int
    content_length: int
    #: the content bytes, or None when read without content (listing).
    content: bytes | None
    records: tuple[StatusRecord, ...]
    #: bytes up to the end of the last complete record (where appends go).
    valid_length: int
    #: a partial status record follows ``valid_length`` (crash during an append).
    torn_tail: bool = False
    version: int = VERSION

    def lines(self) -> list[bytes]:
        """The content lines without line ends."""
        if self.content is None:
            raise ValueError("queue file was read without its content")
        return self.content.split(b"\n")[:-1]

    def recipient_results(self) -> list[RecipientStatus | None]:
        """The latest result for each recipient (None: not tried yet)."""
        latest: list[RecipientStatus | None] = [None] * len(self.envelope.recipients)
        for record in self.records:
            if isinstance(record, RecipientStatus):
                latest[record.recipient] = record
        return latest

    def pending(self) -> list[tuple[int, Recipient, RecipientStatus | None]]:
        """Recipients not yet sent or bounced, with their latest result
        (``mailq`` lists only these, with their deferral reasons)."""
        return [
            (index, rcpt, result)
            for index, (rcpt, result) in enumerate(
                zip(self.envelope.recipients, self.recipient_results(), strict=True)
            )
            if result is None or result.status not in DONE_STATUSES
        ]

    def notified(self, notice: str) -> set[int]:
        """Recipients a ``notice`` (failure or delay) was already queued for."""
        return {
            index
            for record in self.records
            if isinstance(record, Notice) and record.notice == notice
            for index in record.recipients
        }

    def unnotified_bounces(self) -> list[tuple[int, RecipientStatus]]:
        """Bounced recipients whose non-delivery notification is still owed
        (recorded bounced, no failure notice covers them yet)."""
        done = self.notified("failure")
        return [
            (index, result)
            for index, result in enumerate(self.recipient_results())
            if result is not None and result.status is Status.BOUNCED and index not in done
        ]

    @property
    def forced_expire(self) -> bool:
        return any(isinstance(r, Expire) and r.forced for r in self.records)

    @property
    def next_attempt(self) -> float | None:
        found = [r.next_attempt for r in self.records if isinstance(r, Schedule)]
        return found[-1] if found else None


# -- size as Postfix counts it --------------------------------------------------------


def _record_cost(length: int) -> int:
    length_bytes = max(1, -(-length.bit_length() // 7))
    return 1 + length_bytes + length


def postfix_size(lines: Iterable[bytes], line_length_limit: int = LINE_LENGTH_LIMIT) -> int:
    """The content size Postfix records for these content lines (see module doc)."""
    return sum(record_size(len(line), line_length_limit) for line in lines)


def record_size(length: int, line_length_limit: int = LINE_LENGTH_LIMIT) -> int:
    """:func:`postfix_size` of one line of ``length`` bytes."""
    if length < 128 and length < line_length_limit:
        return length + 2  # the common case: one record, one length byte
    total = 0
    rest = length
    # smtpd reads at most line_length_limit bytes at a time; a full piece
    # becomes a continuation record and the line end its own record, so
    # a line of exactly N x limit bytes ends in an empty record.
    while rest >= line_length_limit:
        total += _record_cost(line_length_limit)
        rest -= line_length_limit
    total += _record_cost(rest)
    return total


# -- encoding -------------------------------------------------------------------------


def _envelope_json(queue_id: str, envelope: Envelope, size: int) -> dict[str, Any]:
    client = envelope.client
    obj: dict[str, Any] = {
        "queue_id": queue_id,
        "arrival_time": envelope.arrival_time,
        "size": size,
        "sender": envelope.sender,
        "recipients": [
            {"address": r.address, "original": r.original, "notify": list(r.notify),
             "orcpt": r.orcpt}
            for r in envelope.recipients
        ],
        "client": None if client is None else {
            "name": client.name, "address": client.address, "port": client.port,
            "helo": client.helo, "protocol": client.protocol,
        },
        "sasl_method": envelope.sasl_method,
        "sasl_username": envelope.sasl_username,
        "dsn_envid": envelope.dsn_envid,
        "dsn_ret": envelope.dsn_ret,
        "mail_params": [list(p) for p in envelope.mail_params],
    }  # fmt: skip
    # Written only when set, so files without them keep their exact bytes.
    if envelope.full_name:
        obj["full_name"] = envelope.full_name
    if envelope.submission:
        obj["submission"] = envelope.submission
    if envelope.content_filter:
        obj["content_filter"] = envelope.content_filter
    if envelope.redirect:
        obj["redirect"] = envelope.redirect
    return obj


def _dump(obj: Any) -> bytes:
    # ensure_ascii keeps undecodable bytes (surrogate escapes) representable.
    return json.dumps(obj, ensure_ascii=True, sort_keys=True, separators=(",", ":")).encode()


def _crc(data: bytes) -> str:
    return f"{zlib.crc32(data):08x}"


def encode_status(record: StatusRecord) -> bytes:
    """One ``S`` record, ready to append."""
    fields = dataclasses.asdict(record)
    if isinstance(record, RecipientStatus):
        for optional in ("remote_mta", "diagnostic"):
            if not fields[optional]:
                del fields[optional]
    payload = _dump(fields)
    return b"S %d %s\n" % (len(payload), _crc(payload).encode()) + payload + b"\n"


def encode(
    queue_id: str,
    envelope: Envelope,
    lines: Sequence[bytes],
    *,
    line_length_limit: int = LINE_LENGTH_LIMIT,
) -> Iterator[bytes]:
    """The chunks of a complete queue file (up to and including ``X``).
    The content is not copied: each line is its own chunk."""
    yield from encode_parts(
        queue_id,
        envelope,
        lines,
        (),
        body_length=0,
        body_size=0,
        line_length_limit=line_length_limit,
    )


def encode_parts(
    queue_id: str,
    envelope: Envelope,
    head: Sequence[bytes],
    body: Iterable[bytes],
    *,
    body_length: int,
    body_size: int,
    line_length_limit: int = LINE_LENGTH_LIMIT,
) -> Iterator[bytes]:
    """:func:`encode` of content given as ``head`` (lines without line
    ends) followed by ``body``: chunks of bytes already in the content
    record's form (lines each followed by LF), ``body_length`` bytes in all,
    whose :func:`postfix_size` is ``body_size``.  A body shorter or longer
    than announced raises OSError (the file would not verify)."""
    size = postfix_size(head, line_length_limit) + body_size
    env = _dump(_envelope_json(queue_id, envelope, size))
    digest = hashlib.sha256()
    offset = 0
    content_length = sum(len(line) + 1 for line in head) + body_length

    def out(chunk: bytes) -> bytes:
        nonlocal offset
        digest.update(chunk)
        offset += len(chunk)
        return chunk

    yield out(b"%s %d\n" % (MAGIC, VERSION))
    yield out(b"E %d %s\n" % (len(env), _crc(env).encode()) + env + b"\n")
    yield out(b"M %d\n" % content_length)
    for line in head:
        yield out(line)
        yield out(b"\n")
    copied = 0
    for chunk in body:
        copied += len(chunk)
        yield out(chunk)
    if copied != body_length:
        raise OSError(f"message body changed while queued: {copied} of {body_length} bytes")
    yield out(b"\n")
    yield b"X %d %s\n" % (offset, digest.hexdigest().encode())


def to_bytes(queue_id: str, envelope: Envelope, lines: Sequence[bytes]) -> bytes:
    return b"".join(encode(queue_id, envelope, lines))


# -- decoding -------------------------------------------------------------------------


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise CorruptQueueFile(what)


def _read_line(f: BinaryIO, what: str) -> bytes:
    line = f.readline(_MAX_RECORD_HEADER)
    _need(line.endswith(b"\n"), f"truncated or malformed {what}")
    return line[:-1]


def _fields(line: bytes, tag: bytes, count: int, what: str) -> list[bytes]:
    parts = line.split(b" ")
    _need(len(parts) == count + 1 and parts[0] == tag, f"malformed {what}")
    return parts[1:]


def _number(text: bytes, what: str) -> int:
    _need(text.isdigit() and len(text) <= 15, f"malformed {what} length")
    return int(text)


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    _need(len(data) == n, f"truncated {what}")
    return data


def _framed(f: BinaryIO, tag: bytes, what: str) -> bytes:
    length, crc = _fields(_read_line(f, what), tag, 2, what)
    payload = _read_exact(f, _number(length, what), what)
    _need(_read_exact(f, 1, what) == b"\n", f"unterminated {what}")
    _need(_crc(payload).encode() == crc, f"{what} checksum mismatch")
    return payload


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _envelope_from(obj: dict[str, Any]) -> tuple[str, Envelope, int]:
    client = obj["client"]
    envelope = Envelope(
        sender=_str(obj, "sender"),
        recipients=tuple(
            Recipient(
                address=_str(r, "address"), original=_str(r, "original"),
                notify=tuple(str(n) for n in r["notify"]), orcpt=_str(r, "orcpt"),
            )
            for r in obj["recipients"]
        ),
        arrival_time=float(obj["arrival_time"]),
        client=None if client is None else Client(
            name=_str(client, "name"), address=_str(client, "address"),
            port=int(client["port"]), helo=_str(client, "helo"),
            protocol=_str(client, "protocol"),
        ),
        sasl_method=_str(obj, "sasl_method"),
        sasl_username=_str(obj, "sasl_username"),
        dsn_envid=_str(obj, "dsn_envid"),
        dsn_ret=_str(obj, "dsn_ret"),
        mail_params=tuple((str(k), str(v)) for k, v in obj["mail_params"]),
        full_name=str(obj.get("full_name", "")),
        submission=submission_kind(str(obj.get("submission", ""))),
        content_filter=str(obj.get("content_filter", "")),
        redirect=str(obj.get("redirect", "")),
    )  # fmt: skip
    return _str(obj, "queue_id"), envelope, int(obj["size"])


def _status_from(obj: dict[str, Any], nrcpt: int) -> StatusRecord:
    kind = obj.pop("kind")
    record: StatusRecord
    if kind == "rcpt":
        record = RecipientStatus(**obj)
        _need(0 <= record.recipient < nrcpt, "status record for an unknown recipient")
    elif kind == "schedule":
        record = Schedule(**obj)
    elif kind == "expire":
        record = Expire(**obj)
    elif kind == "notice":
        record = Notice(
            notice=obj.pop("notice"),
            recipients=tuple(int(i) for i in obj.pop("recipients")),
            **obj,
        )
        _need(all(0 <= i < nrcpt for i in record.recipients), "notice for an unknown recipient")
    else:
        raise CorruptQueueFile(f"unknown status record kind {kind!r}")
    return record


def _json(payload: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise CorruptQueueFile(f"malformed {what}: {exc}") from None
    _need(isinstance(obj, dict), f"malformed {what}")
    return obj  # type: ignore[no-any-return]


def read(f: BinaryIO, *, content: bool = True) -> QueueFile:
    """Parse and verify a queue file from the start of ``f``.

    With ``content=True`` every byte before the end record is checked
    against its digest; ``content=False`` (listing: ``mailq``, ``qshape``)
    skips the content by seeking and checks the envelope's own checksum and
    the end record's position and shape only.  Raises
    :class:`CorruptQueueFile` for anything that is not a complete file.
    """
    whole: io.BytesIO | None = None
    if content:
        # One read; the digest below runs over the same bytes in memory.
        f = whole = io.BytesIO(f.read())
    (version,) = _fields(_read_line(f, "header"), MAGIC, 1, "header")
    _need(version == b"%d" % VERSION, f"unsupported queue file version {version!r}")
    envelope_payload = _framed(f, b"E", "envelope record")
    try:
        queue_id, envelope, size = _envelope_from(_json(envelope_payload, "envelope record"))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptQueueFile(f"malformed envelope record: {exc}") from None
    (length,) = _fields(_read_line(f, "content record"), b"M", 1, "content record")
    content_length = _number(length, "content record")
    content_offset = f.tell()
    body: bytes | None = None
    if content:
        body = _read_exact(f, content_length, "content")
        _need(body[-1:] in (b"\n", b""), "content does not end with a line end")
    else:
        f.seek(content_length, 1)
    _need(f.read(1) == b"\n", "truncated content")
    end_offset = f.tell()
    offset, digest = _fields(_read_line(f, "end record"), b"X", 2, "end record")
    _need(_number(offset, "end record") == end_offset, "end record at the wrong offset")
    _need(len(digest) == 64, "malformed end record")
    if whole is not None:
        check = hashlib.sha256(whole.getbuffer()[:end_offset])
        _need(check.hexdigest().encode() == digest, "queue file checksum mismatch")
    valid_length = f.tell()
    records: list[StatusRecord] = []
    torn = False
    while True:
        peek = f.read(1)
        if not peek:
            break
        f.seek(-1, 1)
        try:
            payload = _framed(f, b"S", "status record")
        except CorruptQueueFile:
            # A torn append: the tail was never acknowledged.  Anything after
            # it cannot be trusted either (appenders truncate before writing).
            torn = True
            break
        # A complete, checksummed record that does not make sense is not a
        # crash artefact: the file is corrupt.
        try:
            record = _status_from(_json(payload, "status record"), len(envelope.recipients))
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptQueueFile(f"malformed status record: {exc}") from None
        records.append(record)
        valid_length = f.tell()
    return QueueFile(
        queue_id=queue_id,
        envelope=envelope,
        size=size,
        content_offset=content_offset,
        content_length=content_length,
        content=body,
        records=tuple(records),
        valid_length=valid_length,
        torn_tail=torn,
    )
