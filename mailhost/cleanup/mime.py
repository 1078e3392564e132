"""The MIME structure cleanup's content inspection walks (Postfix's mime_state):
which lines are headers of which kind, which are body, where the primary
header ends.

Where this sits: :mod:`mailhost.cleanup.inspect` feeds the message, line by
line, through :class:`MimeState` and applies header_checks,
mime_header_checks, nested_header_checks and body_checks to what comes out.
Nothing here does I/O.

What it reproduces of Postfix 3.7's mime_state(3), because the checks a
line meets depend on it:

* a header is a label (printable ASCII but ``:``, optional blanks) and a
  colon; lines starting with a blank or tab continue it, and the logical
  header is the lines joined by ``\\n`` (blanks between label and colon
  removed); a line that is neither ends the header block — an empty line
  is the body's first line, anything else is body text, and after the
  primary header Postfix puts an empty line before it;
* a header's kind: the MIME headers (``Content-Description``,
  ``Content-Disposition``, ``Content-ID``, ``Content-Transfer-Encoding``,
  ``Content-Type``, ``MIME-Version``) are always ``mime`` (also with
  disable_mime_input_processing = yes); others are
  ``primary`` in the message's own header, ``mime`` in a multipart body
  part, ``nested`` in an attached message (``message/rfc822``);
* ``Content-Type`` is read (with :mod:`email`'s parameter parser) before
  the checks see it: ``multipart/*`` pushes every ``boundary=`` (a
  ``multipart/digest`` part defaults to ``message/rfc822``), ``message/rfc822``
  makes the next block of lines after the empty line a nested header;
* in body text a line ``--BOUNDARY`` (any boundary of the open multiparts,
  innermost first, trailing text ignored) starts a new part's header;
  ``--BOUNDARY--`` closes that multipart;
* a body line's offset is counted from the start of its segment (the empty
  line after a header block, or the boundary line), each line costing its
  length plus one: body_checks_size_limit compares it;
* lines longer than ``line_length_limit`` are body records of that length
  (what smtpd wrote to the queue file), each checked on its own; a boundary
  is only recognised at the start of a line.

Not reproduced (they only matter with the strict_* parameters or for 8-bit
downgrades, which mailhost does not do): encoding-domain and 8-bit checks,
the nesting and header-length limits.
"""

from __future__ import annotations

import email.message
import email.utils
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

#: Postfix's header_opts entries with HDR_OPT_MIME (lower case).
MIME_HEADERS = frozenset(
    {
        "content-description",
        "content-disposition",
        "content-id",
        "content-transfer-encoding",
        "content-type",
        "mime-version",
    }
)


class HeaderKind(Enum):
    """Which header checks a header meets."""

    PRIMARY = "header_checks"
    MIME = "mime_header_checks"
    NESTED = "nested_header_checks"


class _State(Enum):
    PRIMARY = "primary"
    MULTIPART = "multipart"
    NESTED = "nested"
    BODY = "body"


class _Type(Enum):
    TEXT = "text"
    MESSAGE = "message"
    MULTIPART = "multipart"
    OTHER = "other"


@dataclass(frozen=True)
class Header:
    """One logical header: its physical lines and its kind."""

    lines: tuple[bytes, ...]
    kind: HeaderKind
    #: the logical header as header checks see it (lines joined by ``\\n``,
    #: blanks between the label and the colon removed).
    text: bytes


@dataclass(frozen=True)
class Body:
    """One body record: a line, or a piece of a long line."""

    data: bytes
    #: offset in its body segment (body_checks_size_limit compares it).
    offset: int
    #: False for a piece followed by more of the same line.
    line_end: bool = True
    #: True for the empty line Postfix adds after a primary header that
    #: ends without one.
    inserted: bool = False


@dataclass(frozen=True)
class HeaderEnd:
    """The end of the message's own (primary) header."""


Event = Header | Body | HeaderEnd


def header_label_length(line: bytes) -> int:
    """The length of the header label when ``line`` starts a header (Postfix
    is_header_buf: printable ASCII but ``:``, then blanks, then ``:``), else 0."""
    n = 0
    for byte in line:
        if byte == 0x3A or byte <= 0x20 or byte >= 0x7F:
            break
        n += 1
    if n == 0:
        return 0
    rest = line[n:].lstrip(b" \t")
    return n if rest.startswith(b":") else 0


def is_header(text: str) -> bool:
    """True when ``text`` begins with a valid header label and colon (what
    PREPEND and REPLACE require of a header's replacement)."""
    return header_label_length(text.encode("utf-8", "surrogateescape")) > 0


def content_type(value: bytes) -> tuple[_Type, str, list[str]]:
    """Main type, subtype and boundaries of a Content-Type value."""
    message = email.message.Message()
    message["Content-Type"] = value.decode("latin-1")
    params = message.get_params(header="content-type") or []
    if not params:
        return _Type.OTHER, "", []
    kind, _, sub = params[0][0].partition("/")
    main = kind.strip().lower()
    boundaries = [
        str(email.utils.collapse_rfc2231_value(v))
        for k, v in params[1:]
        if k.strip().lower() == "boundary" and v
    ]
    for name in _Type:
        if main == name.value:
            return name, sub.strip().lower(), boundaries
    return _Type.OTHER, sub.strip().lower(), boundaries


@dataclass
class _Multipart:
    boundary: bytes
    default: tuple[_Type, str]


@dataclass
class MimeState:
    """Postfix's mime_state: feed lines, get :data:`Event` values in order."""

    #: False with disable_mime_input_processing = yes: one header, then body.
    mime: bool = True
    line_length_limit: int = 2048
    _state: _State = _State.PRIMARY
    _type: tuple[_Type, str] = (_Type.TEXT, "plain")
    _stack: list[_Multipart] = field(default_factory=list)
    _pending: list[bytes] = field(default_factory=list)
    _pending_state: _State = _State.PRIMARY
    _offset: int = 0

    def feed(self, line: bytes) -> Iterator[Event]:
        """The events ``line`` (without its line end) completes."""
        if self._state is not _State.BODY:
            if self._pending and line[:1] in (b" ", b"\t"):
                self._pending.append(line)
                return
            if self._pending:
                yield self._flush()
            if header_label_length(line) > 0:
                self._pending = [line]
                self._pending_state = self._state
                return
            yield from self._end_of_header(line)
        yield from self._body(line)

    def plain_body(self) -> bool:
        """Past every header, with no multipart open: each line from here
        on is a body record, nothing else (so, without body_checks, it
        comes out of inspection as it went in)."""
        return self._state is _State.BODY and not self._stack and not self._pending

    def finish(self) -> Iterator[Event]:
        """Events still pending at the end of the message."""
        if self._pending:
            yield self._flush()
        if self._state is _State.PRIMARY:
            self._state = _State.BODY
            yield HeaderEnd()

    def _flush(self) -> Header:
        lines = tuple(self._pending)
        self._pending = []
        first = lines[0]
        label = header_label_length(first)
        colon = first[label:].lstrip(b" \t")
        text = b"\n".join((first[:label] + colon, *lines[1:]))
        name = first[:label].decode("ascii").lower()
        if name in MIME_HEADERS:
            # Postfix's cleanup sends these to mime_header_checks even with
            # disable_mime_input_processing = yes.
            kind = HeaderKind.MIME
        elif self._pending_state is _State.PRIMARY or not self.mime:
            kind = HeaderKind.PRIMARY
        elif self._pending_state is _State.MULTIPART:
            kind = HeaderKind.MIME
        else:
            kind = HeaderKind.NESTED
        if self.mime and name == "content-type":
            self._content_type(text[text.index(b":") + 1 :])
        return Header(lines, kind, text)

    def _content_type(self, value: bytes) -> None:
        main, sub, boundaries = content_type(value)
        self._type = (main, sub)
        if main is _Type.MULTIPART:
            default = (_Type.MESSAGE, "rfc822") if sub == "digest" else (_Type.TEXT, "plain")
            for boundary in boundaries:
                encoded = boundary.encode("utf-8", "surrogateescape")
                self._stack.append(_Multipart(encoded, default))

    def _end_of_header(self, line: bytes) -> Iterator[Event]:
        was = self._state
        if was is _State.PRIMARY:
            yield HeaderEnd()
        if line != b"":
            # Not a header and not the empty line: body text from here on.
            self._state = _State.BODY
            self._offset = 0
            if was is _State.PRIMARY:
                yield Body(b"", 0, inserted=True)
                self._offset = 1
            return
        self._offset = 0
        main, sub = self._type
        if self.mime and main is _Type.MESSAGE and sub == "rfc822":
            self._state = _State.NESTED
            self._type = (_Type.TEXT, "plain")
        else:
            self._state = _State.BODY
            if main is _Type.MULTIPART:
                self._type = (_Type.OTHER, "")

    def _body(self, line: bytes) -> Iterator[Event]:
        if self._state is _State.BODY and self._stack and line.startswith(b"--"):
            self._boundary(line)
        limit = self.line_length_limit
        if len(line) <= limit or limit <= 0:
            yield self._record(line, line_end=True)
            return
        start = 0
        while len(line) - start >= limit:
            yield self._record(line[start : start + limit], line_end=False)
            start += limit
        yield self._record(line[start:], line_end=True)

    def _record(self, data: bytes, *, line_end: bool) -> Body:
        event = Body(data, self._offset, line_end)
        self._offset += len(data) + 1
        return event

    def _boundary(self, line: bytes) -> None:
        if len(line) <= 2:
            return
        for depth in range(len(self._stack) - 1, -1, -1):
            part = self._stack[depth]
            if not line[2:].startswith(part.boundary):
                continue
            del self._stack[depth + 1 :]
            if line[2 + len(part.boundary) :].startswith(b"--"):
                self._stack.pop()
                self._state = _State.BODY
                self._type = (_Type.OTHER, "")
                self._offset = 0
            else:
                self._state = _State.MULTIPART
                self._type = part.default
            return


def events(lines: list[bytes], *, mime: bool = True, line_length_limit: int = 2048) -> list[Event]:
    """Every event of a whole message, in order (for tests and tools)."""
    state = MimeState(mime=mime, line_length_limit=line_length_limit)
    out: list[Event] = []
    for line in lines:
        out.extend(state.feed(line))
    out.extend(state.finish())
    return out
