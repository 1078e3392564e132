"""The Sendmail milter protocol on the wire (version 6), as the MTA side speaks it.

A packet is a 4-byte big-endian length (of what follows), one command byte
and the command's data.  Strings are NUL-terminated; numbers are 32-bit
big-endian (the port of SMFIC_CONNECT is 16-bit).  This module frames and
unframes packets, names the command and reply codes, the action (SMFIF_) and
protocol (SMFIP_) bits, and encodes/decodes the option negotiation
(SMFIC_OPTNEG), including the macro lists a filter asks for (SETSYMLIST).
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

from mailhost.errors import MailhostError

# -- MTA -> filter commands --------------------------------------------------------

SMFIC_ABORT = b"A"
SMFIC_BODY = b"B"
SMFIC_CONNECT = b"C"
SMFIC_MACRO = b"D"
SMFIC_BODYEOB = b"E"
SMFIC_HELO = b"H"
SMFIC_QUIT_NC = b"K"
SMFIC_HEADER = b"L"
SMFIC_MAIL = b"M"
SMFIC_EOH = b"N"
SMFIC_OPTNEG = b"O"
SMFIC_QUIT = b"Q"
SMFIC_RCPT = b"R"
SMFIC_DATA = b"T"
SMFIC_UNKNOWN = b"U"

# -- filter -> MTA replies -----------------------------------------------------------

SMFIR_ADDRCPT = b"+"
SMFIR_DELRCPT = b"-"
SMFIR_ADDRCPT_PAR = b"2"
SMFIR_SHUTDOWN = b"4"
SMFIR_ACCEPT = b"a"
SMFIR_REPLBODY = b"b"
SMFIR_CONTINUE = b"c"
SMFIR_DISCARD = b"d"
SMFIR_CHGFROM = b"e"
SMFIR_CONN_FAIL = b"f"
SMFIR_ADDHEADER = b"h"
SMFIR_INSHEADER = b"i"
SMFIR_SETSYMLIST = b"l"
SMFIR_CHGHEADER = b"m"
SMFIR_PROGRESS = b"p"
SMFIR_QUARANTINE = b"q"
SMFIR_REJECT = b"r"
SMFIR_SKIP = b"s"
SMFIR_TEMPFAIL = b"t"
SMFIR_REPLYCODE = b"y"

#: Reply names for log lines (Postfix's smfir_table).
REPLY_NAMES = {
    SMFIR_ADDRCPT: "SMFIR_ADDRCPT",
    SMFIR_DELRCPT: "SMFIR_DELRCPT",
    SMFIR_ADDRCPT_PAR: "SMFIR_ADDRCPT_PAR",
    SMFIR_SHUTDOWN: "SMFIR_SHUTDOWN",
    SMFIR_ACCEPT: "SMFIR_ACCEPT",
    SMFIR_REPLBODY: "SMFIR_REPLBODY",
    SMFIR_CONTINUE: "SMFIR_CONTINUE",
    SMFIR_DISCARD: "SMFIR_DISCARD",
    SMFIR_CHGFROM: "SMFIR_CHGFROM",
    SMFIR_CONN_FAIL: "SMFIR_CONN_FAIL",
    SMFIR_ADDHEADER: "SMFIR_ADDHEADER",
    SMFIR_INSHEADER: "SMFIR_INSHEADER",
    SMFIR_SETSYMLIST: "SMFIR_SETSYMLIST",
    SMFIR_CHGHEADER: "SMFIR_CHGHEADER",
    SMFIR_PROGRESS: "SMFIR_PROGRESS",
    SMFIR_QUARANTINE: "SMFIR_QUARANTINE",
    SMFIR_REJECT: "SMFIR_REJECT",
    SMFIR_SKIP: "SMFIR_SKIP",
    SMFIR_TEMPFAIL: "SMFIR_TEMPFAIL",
    SMFIR_REPLYCODE: "SMFIR_REPLYCODE",
}

#: Event names for log lines (Postfix's smfic_table).
EVENT_NAMES = {
    SMFIC_CONNECT: "SMFIC_CONNECT",
    SMFIC_HELO: "SMFIC_HELO",
    SMFIC_MAIL: "SMFIC_MAIL",
    SMFIC_RCPT: "SMFIC_RCPT",
    SMFIC_DATA: "SMFIC_DATA",
    SMFIC_HEADER: "SMFIC_HEADER",
    SMFIC_EOH: "SMFIC_EOH",
    SMFIC_BODY: "SMFIC_BODY",
    SMFIC_BODYEOB: "SMFIC_BODYEOB",
    SMFIC_UNKNOWN: "SMFIC_UNKNOWN",
}

# -- actions the MTA allows (SMFIF_) -------------------------------------------------

SMFIF_ADDHDRS = 0x01
SMFIF_CHGBODY = 0x02
SMFIF_ADDRCPT = 0x04
SMFIF_DELRCPT = 0x08
SMFIF_CHGHDRS = 0x10
SMFIF_QUARANTINE = 0x20
SMFIF_CHGFROM = 0x40
SMFIF_ADDRCPT_PAR = 0x80
SMFIF_SETSYMLIST = 0x100
#: Every action this client carries out (Postfix announces the same set).
MTA_ACTIONS = 0x1FF

# -- protocol steps (SMFIP_) ------------------------------------------------------------

SMFIP_NOCONNECT = 0x1
SMFIP_NOHELO = 0x2
SMFIP_NOMAIL = 0x4
SMFIP_NORCPT = 0x8
SMFIP_NOBODY = 0x10
SMFIP_NOHDRS = 0x20
SMFIP_NOEOH = 0x40
SMFIP_NR_HDR = 0x80
SMFIP_NOUNKNOWN = 0x100
SMFIP_NODATA = 0x200
SMFIP_SKIP = 0x400
SMFIP_RCPT_REJ = 0x800
SMFIP_NR_CONN = 0x1000
SMFIP_NR_HELO = 0x2000
SMFIP_NR_MAIL = 0x4000
SMFIP_NR_RCPT = 0x8000
SMFIP_NR_DATA = 0x10000
SMFIP_NR_UNKN = 0x20000
SMFIP_NR_EOH = 0x40000
SMFIP_NR_BODY = 0x80000
SMFIP_HDR_LEADSPC = 0x100000

_V2 = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NOBODY
_V2 |= SMFIP_NOHDRS | SMFIP_NOEOH
_V4 = _V2 | SMFIP_NOUNKNOWN | SMFIP_NODATA
_NO_REPLY = SMFIP_NR_HDR | SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT
_NO_REPLY |= SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY
#: The protocol steps each version defines (what the MTA offers to skip).
VERSION_STEPS = {
    2: _V2,
    3: _V2 | SMFIP_NOUNKNOWN,
    4: _V4,
    6: _V4 | SMFIP_SKIP | SMFIP_RCPT_REJ | _NO_REPLY | SMFIP_HDR_LEADSPC,
}

# -- macro stages of SETSYMLIST (SMFIM_) ------------------------------------------------

SMFIM_CONNECT = 0
SMFIM_HELO = 1
SMFIM_ENVFROM = 2
SMFIM_ENVRCPT = 3
SMFIM_DATA = 4
SMFIM_EOM = 5
SMFIM_EOH = 6

#: libmilter's MILTER_CHUNK_SIZE: the largest body chunk sent at once.
CHUNK_SIZE = 65535
#: The largest reply packet accepted (Postfix's limit, INT_MAX / 2).
MAX_PACKET = 0x3FFFFFFF

_LENGTH = struct.Struct(">I")


class MilterProtocolError(MailhostError):
    """The filter sent something that is not the milter protocol."""


def packet(command: bytes, data: bytes = b"") -> bytes:
    """One framed packet."""
    return _LENGTH.pack(len(data) + 1) + command + data


def cstrings(*values: str) -> bytes:
    """NUL-terminated strings, concatenated."""
    return b"".join(v.encode("utf-8", "surrogateescape") + b"\0" for v in values)


def split_cstrings(data: bytes) -> list[str]:
    """The NUL-terminated strings of ``data`` (a missing last NUL is an error)."""
    if not data:
        return []
    if not data.endswith(b"\0"):
        raise MilterProtocolError("string not NUL-terminated")
    return [p.decode("utf-8", "surrogateescape") for p in data[:-1].split(b"\0")]


async def read_packet(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(command byte, data) of the next packet; raises MilterProtocolError on
    garbage and asyncio.IncompleteReadError when the filter closed."""
    head = await reader.readexactly(4)
    (length,) = _LENGTH.unpack(head)
    check_length(length)
    body = await reader.readexactly(length)
    return body[:1], body[1:]


def check_length(length: int) -> None:
    """Postfix's checks of a reply packet's length (and its warnings)."""
    signed = length - (1 << 32) if length >= 1 << 31 else length
    if signed < 1:
        raise MilterProtocolError(f"bad packet length: {signed}")
    if length > MAX_PACKET:
        raise MilterProtocolError(f"unreasonable packet length: {length} > {MAX_PACKET}")


def decode_packets(buffer: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Complete packets at the front of ``buffer`` and what is left over."""
    out: list[tuple[bytes, bytes]] = []
    while len(buffer) >= 4:
        (length,) = _LENGTH.unpack_from(buffer)
        check_length(length)
        if len(buffer) < 4 + length:
            break
        out.append((buffer[4:5], buffer[5 : 4 + length]))
        buffer = buffer[4 + length :]
    return out, buffer


@dataclass(frozen=True)
class Negotiation:
    """SMFIC_OPTNEG in either direction: version, actions, protocol steps and
    (from the filter) the macro lists it wants per stage (SMFIM_ -> names)."""

    version: int
    actions: int
    protocol: int
    symlists: dict[int, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        data = struct.pack(">III", self.version, self.actions, self.protocol)
        for stage, names in sorted(self.symlists.items()):
            data += struct.pack(">I", stage) + cstrings(names)
        return data

    @classmethod
    def decode(cls, data: bytes) -> Negotiation:
        if len(data) < 12:
            raise MilterProtocolError("short option negotiation")
        version, actions, protocol = struct.unpack_from(">III", data)
        rest = data[12:]
        symlists: dict[int, str] = {}
        while rest:
            if len(rest) < 5:
                raise MilterProtocolError("bad macro list in option negotiation")
            (stage,) = struct.unpack_from(">I", rest)
            end = rest.find(b"\0", 4)
            if end < 0:
                raise MilterProtocolError("macro list not NUL-terminated")
            symlists[stage] = rest[4:end].decode("utf-8", "surrogateescape")
            rest = rest[end + 1 :]
        return cls(version, actions, protocol, symlists)


def connect_data(name: str, family: bytes, port: int, address: str) -> bytes:
    """SMFIC_CONNECT data: host name, family (``4``, ``6``, ``L``, ``U``), port, address."""
    data = cstrings(name) + family
    if family == b"U":
        return data
    return data + struct.pack(">H", port) + cstrings(address)


def macro_data(event: bytes, pairs: list[tuple[str, str]]) -> bytes:
    """SMFIC_MACRO data: the event code and name/value pairs."""
    return event + b"".join(cstrings(name, value) for name, value in pairs)


def index_and_strings(data: bytes) -> tuple[int, list[str]]:
    """A 32-bit index followed by NUL-terminated strings (CHGHEADER, INSHEADER)."""
    if len(data) < 4:
        raise MilterProtocolError("short header change request")
    (index,) = struct.unpack_from(">i", data)
    return index, split_cstrings(data[4:])
