"""A message as the milters see and change it, and the modifications applied
the way Postfix's cleanup (cleanup_milter.c) applies them.

Header positions follow Postfix: smtpd's own ``Received:`` header is not
shown to filters and does not count for SMFIR_CHGHEADER (whose index is
relative to the headers as received), but it does count for SMFIR_INSHEADER
(index 0 puts a header above it).  A CHGHEADER for a header that does not
exist adds it; an INSHEADER past the end appends.  SMFIR_REPLBODY replaces
the whole body.  Recipients are deleted by address (every copy) and added at
the end; CHGFROM replaces the envelope sender.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mailhost.milter.verdict import (
    AddHeader,
    AddRecipient,
    ChangeHeader,
    ChangeSender,
    DeleteRecipient,
    Edit,
    InsertHeader,
    ReplaceBody,
)


class EditCheck(Protocol):
    """What checks the edits a milter asks for before they are applied
    (cleanup's milter_header_checks, :mod:`mailhost.cleanup.milter_header_checks`)."""

    @property
    def stopped(self) -> bool:
        """A REJECT or DISCARD ended the modifications."""
        ...

    async def checked(self, edit: Edit) -> Edit | None:
        """``edit`` as the checks leave it (None: dropped)."""
        ...


@dataclass
class Header:
    """One logical header: its physical lines (no line ends)."""

    lines: list[bytes]
    #: smtpd's own Received: header (hidden from the filters).
    own: bool = False

    @property
    def name(self) -> str:
        first = self.lines[0]
        return first.split(b":", 1)[0].strip().decode("utf-8", "surrogateescape")

    def value(self) -> str:
        """The text after the colon, folded lines joined by LF (as Sendmail
        sends multi-line headers)."""
        text = b"\n".join(self.lines).split(b":", 1)[1]
        return text.decode("utf-8", "surrogateescape")


def make_header(name: str, value: str) -> Header:
    """``name:value`` (value with its leading space, if any); LF in the value
    folds the header."""
    text = f"{name}:{value}".replace("\r\n", "\n")
    return Header([line.encode("utf-8", "surrogateescape") for line in text.split("\n")])


def is_header_start(line: bytes) -> bool:
    name, colon, _ = line.partition(b":")
    label = name.strip()
    return bool(colon) and bool(label) and b" " not in label and line[:1] not in (b" ", b"\t")


@dataclass
class Content:
    """Envelope and content of one message while the milters edit it."""

    sender: str
    recipients: list[str]
    headers: list[Header]
    body: list[bytes]
    #: The empty line between header section and body was there.
    has_separator: bool = True
    #: A filter changed something.
    edited: bool = False
    #: A filter replaced the body (SMFIR_REPLBODY).
    body_replaced: bool = False
    #: Lines of the message's own header section as parsed (before the
    #: empty line, when there is one).
    header_lines: int = 0
    #: milter_header_checks for this message (None: not set).
    header_checks: EditCheck | None = None

    @classmethod
    def parse(
        cls, sender: str, recipients: list[str], received: list[bytes], lines: list[bytes]
    ) -> Content:
        headers: list[Header] = []
        if received:
            headers.append(Header(list(received), own=True))
        index = 0
        while index < len(lines):
            line = lines[index]
            if line == b"":
                break
            if line[:1] in (b" ", b"\t") and len(headers) > (1 if received else 0):
                headers[-1].lines.append(line)
            elif is_header_start(line):
                headers.append(Header([line]))
            else:
                break
            index += 1
        separator = index < len(lines) and lines[index] == b""
        body = lines[index + 1 :] if separator else lines[index:]
        return cls(sender, recipients, headers, list(body), separator, header_lines=index)

    def visible_headers(self) -> list[tuple[str, str]]:
        """(name, value) of the headers the filters see."""
        return [(h.name, h.value()) for h in self.headers if not h.own]

    def received_and_header(self) -> tuple[list[bytes], list[bytes]]:
        """(smtpd's part: every header up to and including its Received:,
        the header lines after it)."""
        own_at = next((i for i, h in enumerate(self.headers) if h.own), -1)
        top = [line for h in self.headers[: own_at + 1] for line in h.lines]
        rest = [line for h in self.headers[own_at + 1 :] for line in h.lines]
        return top, rest

    def received_and_lines(self) -> tuple[list[bytes], list[bytes]]:
        """(smtpd's part: every header up to and including its Received:,
        the message lines after it)."""
        top, rest = self.received_and_header()
        # Unedited content goes back as it came; an edited message with a
        # body keeps its header section apart from it.
        if self.has_separator or (self.body and self.edited):
            rest.append(b"")
        return top, rest + self.body

    def keeps_body(self, spooled_header_lines: int) -> bool:
        """True when the edits left the body as it was spooled: not
        replaced, and the message's header section is exactly the
        ``spooled_header_lines`` lines kept in memory, so the spool (which
        then starts with the empty line) is the body that follows the new
        header section unchanged."""
        return (
            not self.body_replaced
            and self.has_separator
            and self.header_lines == spooled_header_lines
        )

    # -- the modifications --------------------------------------------------------

    def apply(self, edit: Edit) -> None:
        self.edited = True
        if isinstance(edit, AddHeader):
            self.headers.append(make_header(edit.name, edit.value))
        elif isinstance(edit, InsertHeader):
            position = min(max(edit.index, 0), len(self.headers))
            self.headers.insert(position, make_header(edit.name, edit.value))
        elif isinstance(edit, ChangeHeader):
            self.change_header(edit)
        elif isinstance(edit, ReplaceBody):
            text = edit.body
            lines = text.split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            self.body = [line[:-1] if line.endswith(b"\r") else line for line in lines]
            self.has_separator = True
            self.body_replaced = True
        elif isinstance(edit, AddRecipient):
            self.recipients.append(strip_brackets(edit.address))
        elif isinstance(edit, DeleteRecipient):
            gone = strip_brackets(edit.address).lower()
            self.recipients = [r for r in self.recipients if r.lower() != gone]
        elif isinstance(edit, ChangeSender):
            self.sender = strip_brackets(edit.address)

    def change_header(self, edit: ChangeHeader) -> None:
        wanted = edit.name.lower()
        count = 0
        for position, header in enumerate(self.headers):
            if header.own or header.name.lower() != wanted:
                continue
            count += 1
            if count == edit.index:
                if edit.value:
                    self.headers[position] = make_header(edit.name, edit.value)
                else:
                    del self.headers[position]
                return
        if edit.value:
            self.headers.append(make_header(edit.name, edit.value))


def strip_brackets(address: str) -> str:
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        return address[1:-1]
    return address
