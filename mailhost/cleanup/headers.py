"""cleanup(8)'s treatment of a local submission, between pickup and the queue.

Where this sits in the pipeline: ``mailhost sendmail`` drops the message as
read into ``maildrop``; pickup (:mod:`mailhost.pickup`) hands each file
to :func:`clean_local`, which is the one place where cleanup-style header
processing of locally submitted mail happens, and writes the result into
``incoming`` for the queue manager.  Everything here is pure: lines in, lines
out.

What Postfix 3.7.11's cleanup does to a ``sendmail`` submission (recorded
from a real instance, tests/sendmail/postfix_sendmail.json):

* a first header ``Received: by MYHOSTNAME (MAIL_NAME, from userid UID)`` /
  ``\\tid QID; DATE`` (DATE = arrival time, RFC 5322, :func:`mail_date`);
* ``Bcc:`` and ``Resent-Bcc:`` headers are removed;
* unqualified addresses in address headers (``To: bob``,
  ``Cc: Named <user2>``) are qualified like envelope addresses
  (``bob@$myorigin``; the ``local`` rewrite context), the rest of the header
  kept byte for byte;
* at the end of the header section the missing headers are added, in this
  order: ``Message-Id: <YYYYMMDDHHMMSS.QID@MYHOSTNAME>`` (UTC time of
  cleanup), ``Date:`` (arrival time), ``From:``.  When the message has any
  ``Resent-`` header they are ``Resent-Message-Id:``, ``Resent-Date:``,
  ``Resent-From:`` instead, and the plain ones are left alone;
* ``From:`` is ``Full Name <sender>`` with the name as an RFC 5322 phrase
  (quoted, with ``\\`` and ``"`` escaped, when it holds a special character
  such as ``.`` or ``,``), ``sender`` alone without a full name, and
  ``MAILER-DAEMON`` for the null sender;
* a body that starts without an empty line (the first non-header line ends
  the header section) gets one, so the added headers stay headers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mailhost.address import external_form
from mailhost.config import Config
from mailhost.rfc822 import externalize, fold, has_domain, mail_date, parse_address_list

#: Headers whose value is an address list (Postfix header_opts HDR_OPT_SENDER
#: / HDR_OPT_RECIP); their unqualified addresses are qualified.
ADDRESS_HEADERS = frozenset(
    {
        "from", "sender", "reply-to", "errors-to", "return-receipt-to",
        "resent-from", "resent-sender", "resent-reply-to",
        "to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc",
        "apparently-to", "disposition-notification-to", "mail-followup-to",
        "mail-reply-to",
    }
)  # fmt: skip
#: Removed by cleanup (the blind copies' recipients must not see each other).
DROPPED_HEADERS = frozenset({"bcc", "resent-bcc"})
#: A header line: a field name of printable ASCII other than ':' (RFC 5322
#: 2.2), optional blanks, a colon.
_HEADER = re.compile(rb"^([!-9;-~]+)[ \t]*:")
#: RFC 5322 specials (and the characters that are never atom text) that make
#: a display name need quotes.
_PHRASE_SPECIALS = frozenset('()<>[]:;@\\,."')


@dataclass(frozen=True)
class Qualifier:
    """Envelope and header address qualification (trivial-rewrite's ``local``
    context): ``user`` → ``user@$myorigin`` (append_at_myorigin) and
    ``user@host`` → ``user@host.$mydomain`` (append_dot_mydomain)."""

    myorigin: str
    mydomain: str
    append_at_myorigin: bool = True
    append_dot_mydomain: bool = False

    @classmethod
    def from_config(cls, cfg: Config) -> Qualifier:
        return cls(
            myorigin=cfg.get("myorigin"),
            mydomain=cfg.get("mydomain"),
            append_at_myorigin=cfg.get_bool("append_at_myorigin"),
            append_dot_mydomain=cfg.get_bool("append_dot_mydomain"),
        )

    def _domain_for(self, domain: str) -> str:
        if (
            self.append_dot_mydomain
            and domain
            and "." not in domain
            and not domain.startswith("[")
            and self.mydomain
        ):
            return f"{domain}.{self.mydomain}"
        return domain

    def address(self, address: str) -> str:
        """An envelope address in internal form; the null address stays null."""
        if address == "":
            return ""
        local, at, domain = address.rpartition("@")
        if not at:
            return f"{address}@{self.myorigin}" if self.append_at_myorigin else address
        return f"{local}@{self._domain_for(domain)}"

    def external(self, spec: str) -> str:
        """An addr-spec as written in a header (quotes kept)."""
        if spec == "":
            return spec
        if not has_domain(spec):
            return f"{spec}@{self.myorigin}" if self.append_at_myorigin else spec
        local, _, domain = spec.rpartition("@")
        return f"{local}@{self._domain_for(domain)}"


@dataclass(frozen=True)
class CleanupSettings:
    myhostname: str
    mail_name: str
    qualifier: Qualifier

    @classmethod
    def from_config(cls, cfg: Config) -> CleanupSettings:
        return cls(cfg.get("myhostname"), cfg.get("mail_name"), Qualifier.from_config(cfg))


@dataclass(frozen=True)
class Cleaned:
    """The cleaned content and what cleanup logs about it."""

    lines: list[bytes]
    #: the Message-Id (without brackets; ``""`` when the message has none).
    message_id: str
    #: the Resent-Message-Id cleanup added (``None`` when not in resent mode).
    resent_message_id: str | None


def is_header(line: bytes) -> bool:
    return _HEADER.match(line) is not None


def split_header_section(lines: Sequence[bytes]) -> tuple[list[list[bytes]], list[bytes], bool]:
    """(headers, each a list of its physical lines; the body lines; whether the
    header section ended with an empty line)."""
    headers: list[list[bytes]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line == b"":
            return headers, list(lines[index + 1 :]), True
        if headers and line[:1] in (b" ", b"\t"):
            headers[-1].append(line)
        elif is_header(line):
            headers.append([line])
        else:
            break
        index += 1
    return headers, list(lines[index:]), False


def header_name(header: list[bytes]) -> str:
    match = _HEADER.match(header[0])
    assert match is not None
    return match.group(1).decode("ascii").lower()


def header_value(header: list[bytes]) -> str:
    """The unfolded value (line breaks kept as ``\\n`` so spans map back)."""
    text = b"\n".join(header).decode("utf-8", "surrogateescape")
    return text[text.index(":") + 1 :]


def qualify_header(header: list[bytes], qualifier: Qualifier) -> list[bytes]:
    """An address header with its unqualified addresses qualified; the header
    itself (same object) when nothing changes."""
    text = b"\n".join(header).decode("utf-8", "surrogateescape")
    colon = text.index(":") + 1
    value = text[colon:]
    changed = False
    # Right to left, so earlier spans stay valid.
    for box in reversed(parse_address_list(value)):
        if not box.external:
            continue
        qualified = qualifier.external(box.external)
        if qualified != box.external:
            value = value[: box.start] + qualified + value[box.end :]
            changed = True
    if not changed:
        return header
    # Written back from its tokens and folded, as Postfix does once an
    # address of the header changed (the field name is kept as written).
    name = text[: colon - 1].rstrip(" \t")
    rewritten = fold(f"{name}: {externalize(value)}")
    return [part.encode("utf-8", "surrogateescape") for part in rewritten]


def phrase(name: str) -> str:
    """A display name as an RFC 5322 phrase: as is, or quoted."""
    if name and not any(c in _PHRASE_SPECIALS for c in name):
        return name
    escaped = "".join("\\" + c if c in '"\\' else c for c in name)
    return f'"{escaped}"'


def from_header_value(sender: str, full_name: str) -> str:
    if sender == "":
        return "MAILER-DAEMON"
    address = external_form(sender)
    if full_name:
        return f"{phrase(full_name)} <{address}>"
    return address


def message_id_value(queue_id: str, myhostname: str, now: float) -> str:
    """``YYYYMMDDHHMMSS.QID@MYHOSTNAME`` (UTC time stamp, as cleanup makes it)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    return f"{stamp}.{queue_id}@{myhostname}"


def received_local(
    *, myhostname: str, mail_name: str, uid: int, queue_id: str, arrival: float
) -> list[str]:
    """pickup's ``Received:`` header for a local submission (two lines)."""
    return [
        f"Received: by {myhostname} ({mail_name}, from userid {uid})",
        f"\tid {queue_id}; {mail_date(arrival)}",
    ]


def _bracketed(value: str) -> str:
    text = value.strip()
    return text[1:-1] if text.startswith("<") and text.endswith(">") else text


def clean_local(
    lines: Sequence[bytes],
    *,
    queue_id: str,
    sender: str,
    full_name: str,
    uid: int,
    arrival: float,
    settings: CleanupSettings,
    local: bool = True,
    now: float | None = None,
) -> Cleaned:
    """Apply cleanup's header processing to a ``sendmail`` submission (see
    the module docstring); ``sender`` is the qualified envelope sender.
    ``local=False`` is ``sendmail -G`` (Postfix's remote rewrite context): the
    Received: header and Bcc: removal only — header addresses stay as they
    are and no missing header is added (always_add_missing_headers = no)."""
    now = time.time() if now is None else now
    headers, body, had_blank = split_header_section(lines)
    out: list[bytes] = [
        line.encode()
        for line in received_local(
            myhostname=settings.myhostname,
            mail_name=settings.mail_name,
            uid=uid,
            queue_id=queue_id,
            arrival=arrival,
        )
    ]
    present: set[str] = set()
    message_id = ""
    for header in headers:
        name = header_name(header)
        if name in DROPPED_HEADERS:
            continue
        present.add(name)
        if name == "message-id" and not message_id:
            message_id = _bracketed(header_value(header).replace("\n", ""))
        qualified = local and name in ADDRESS_HEADERS
        out.extend(qualify_header(header, settings.qualifier) if qualified else header)
    resent = any(name.startswith("resent-") for name in present)
    prefix = "Resent-" if resent else ""
    added_id: str | None = None
    if local:
        missing = [f"{prefix}{n}" for n in ("Message-Id", "Date", "From")]
        missing = [n for n in missing if n.lower() not in present]
    else:
        missing = []
    for name in missing:
        if name.endswith("Message-Id"):
            added_id = message_id_value(queue_id, settings.myhostname, now)
            out.append(f"{name}: <{added_id}>".encode())
            if not resent:
                message_id = added_id
        elif name.endswith("Date"):
            out.append(f"{name}: {mail_date(arrival)}".encode())
        else:
            value = from_header_value(sender, full_name)
            out.append(f"{name}: {value}".encode("utf-8", "surrogateescape"))
    if had_blank or body:
        out.append(b"")
    out.extend(body)
    return Cleaned(out, message_id, added_id if resent else None)
