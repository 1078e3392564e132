"""Finding and replacing the addresses in an RFC 5322 address header.

cleanup(8) (canonical maps, masquerading) and smtp(8) (smtp_generic_maps)
rewrite the addresses of ``From:``, ``To:``, ``Cc:``... and nothing else: the
display names, comments and group syntax stay.  This module is the pure part:

* :func:`address_spans` — where each address of a header value is: the text
  inside ``<...>`` of a ``name <addr>`` mailbox, else the one word of a bare
  ``addr`` (comments and folding white space around it excluded);
* :func:`rewrite_value` / :func:`format_header` — a header whose addresses
  changed is written back as Postfix writes a rewritten header
  (cleanup_message.c: the tokens externalized with a newline after each
  comma, then cleanup_fold_header joins lines while the result stays under
  70 columns, continuation lines starting with a TAB); a header whose
  addresses did not change is kept byte for byte.

Which headers hold sender and which recipient addresses is Postfix's
header_opts.c table, confirmed by recording real Postfix 3.7.11
(tests/rewrite/postfix_rewrite.json, case "headers").
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

#: Sender address headers (HDR_OPT_SENDER), by lower-case name.
SENDER_HEADERS = {
    name.lower(): name
    for name in (
        "From",
        "Sender",
        "Reply-To",
        "Return-Path",
        "Errors-To",
        "Return-Receipt-To",
        "Disposition-Notification-To",
        "Mail-Followup-To",
        "Resent-From",
        "Resent-Sender",
    )
}
#: Recipient address headers (HDR_OPT_RECIP); Resent-Reply-To is one (sic).
RECIPIENT_HEADERS = {
    name.lower(): name
    for name in (
        "To",
        "Cc",
        "Bcc",
        "Apparently-To",
        "Resent-To",
        "Resent-Cc",
        "Resent-Bcc",
        "Resent-Reply-To",
    )
}

#: Postfix folds a rewritten header while a line stays under this many columns.
FOLD_WIDTH = 70

_HEADER = re.compile(r"^([!-9;-~]+):")
#: The same, on a line not yet decoded (the name is ASCII either way).
_HEADER_BYTES = re.compile(rb"^([!-9;-~]+):")
#: The address headers' lower-case names as bytes (a header's name is
#: decoded only when it is one of them).
_SENDER_NAMES = frozenset(name.encode("ascii") for name in SENDER_HEADERS)
_ADDRESS_NAMES = _SENDER_NAMES | frozenset(name.encode("ascii") for name in RECIPIENT_HEADERS)
#: Not in the memo (None is a remembered "unchanged").
_UNKNOWN: list[str] = []


@dataclass
class _Unit:
    """One mailbox being scanned: its words and its ``<...>`` span."""

    words: list[tuple[int, int]]
    angle: tuple[int, int] | None = None

    def span(self) -> tuple[int, int] | None:
        if self.angle is not None:
            return self.angle if self.angle[0] < self.angle[1] else None
        return self.words[0] if len(self.words) == 1 else None


class _Scanner:
    def __init__(self, value: str) -> None:
        self.value = value
        self.elements: list[tuple[int, int]] = []
        self.spans: list[tuple[int, int]] = []
        self.unit = _Unit([])
        self.word_start = -1
        self.element_start = 0

    def end_word(self, end: int) -> None:
        if self.word_start >= 0:
            self.unit.words.append((self.word_start, end))
            self.word_start = -1

    def end_unit(self, end: int) -> None:
        self.end_word(end)
        span = self.unit.span()
        if span is not None:
            self.spans.append(span)
        self.unit = _Unit([])

    def run(self) -> None:  # noqa: PLR0915 - one state machine, one loop
        value = self.value
        depth = 0  # comment nesting
        in_quote = in_literal = False
        angle = -1
        i = 0
        while i < len(value):
            char = value[i]
            if char == "\\" and (in_quote or depth):
                i += 2
                continue
            if in_quote:
                in_quote = char != '"'
            elif depth:
                depth += {"(": 1, ")": -1}.get(char, 0)
            elif in_literal:
                in_literal = char != "]"
            elif char == "(":
                self.end_word(i)
                depth = 1
            elif angle >= 0:
                if char == ">":
                    self.unit.angle = _strip(value, angle + 1, i)
                    angle = -1
                elif char == '"':
                    in_quote = True
                elif char == "[":
                    in_literal = True
            elif char == "<":
                self.end_word(i)
                angle = i
            elif char == '"':
                in_quote = True
                if self.word_start < 0:
                    self.word_start = i
            elif char == "[":
                in_literal = True
                if self.word_start < 0:
                    self.word_start = i
            elif char == ",":
                self.end_unit(i)
                self.elements.append((self.element_start, i))
                self.element_start = i + 1
            elif char == ";":
                self.end_unit(i)
            elif char == ":" and not (self.word_start >= 0 and value[self.word_start] == "@"):
                # A group's display name ends here (a source route "@a:b@c" does not).
                self.word_start = -1
                self.unit = _Unit([])
            elif char.isspace():
                self.end_word(i)
            elif self.word_start < 0:
                self.word_start = i
            i += 1
        self.end_unit(len(value))
        self.elements.append((self.element_start, len(value)))


def _strip(value: str, start: int, end: int) -> tuple[int, int]:
    while start < end and value[start].isspace():
        start += 1
    while end > start and value[end - 1].isspace():
        end -= 1
    return start, end


def address_spans(value: str) -> list[tuple[int, int]]:
    """(start, end) of every address in a header value, in order."""
    scanner = _Scanner(value)
    scanner.run()
    return scanner.spans


def elements(value: str) -> list[str]:
    """The comma-separated elements of an address list (top-level commas only)."""
    scanner = _Scanner(value)
    scanner.run()
    return [value[start:end] for start, end in scanner.elements]


def _has_angle(element: str) -> bool:
    """True when the element has a ``<...>`` outside quotes and comments."""
    depth = 0
    in_quote = escape = False
    for char in element:
        if escape:
            escape = False
        elif char == "\\" and (in_quote or depth):
            escape = True
        elif in_quote:
            in_quote = char != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif char == '"':
            in_quote = True
        elif char == "(":
            depth = 1
        elif char == "<":
            return True
    return False


def _externalize(element: str) -> str:
    """One element as Postfix writes it back (tok822_externalize): white
    space outside quotes and comments collapsed to one space, a space after a
    group's colon, and — for a bare ``addr-spec`` — its comments moved after
    the address (``(c) bob@d`` → ``bob@d (c)``, recorded from Postfix 3.7.11)."""
    move_comments = not _has_angle(element)
    out: list[str] = []
    comments: list[str] = []
    comment: list[str] = []
    depth = 0
    in_quote = False
    pending_space = False
    i = 0
    while i < len(element):
        char = element[i]
        target = comment if depth and move_comments else out
        if (in_quote or depth) and char == "\\" and i + 1 < len(element):
            target.append(element[i : i + 2])
            i += 2
            continue
        if in_quote:
            in_quote = char != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
            target.append(char)
            if depth == 0 and move_comments:
                comments.append("".join(comment))
                comment.clear()
            i += 1
            continue
        elif char.isspace():
            pending_space = bool(out)
            i += 1
            continue
        elif char == '"':
            in_quote = True
        elif char == "(":
            depth = 1
            if move_comments:
                comment.append(char)
                i += 1
                continue
        if pending_space:
            out.append(" ")
            pending_space = False
        out.append(char)
        if not in_quote and not depth and char == ":" and i + 1 < len(element):
            following = element[i + 1 :].lstrip()
            if following.startswith(";"):
                pending_space = True
        i += 1
    if comment:  # an unclosed comment stays where it was
        comments.append("".join(comment))
    return " ".join(["".join(out), *comments]) if comments else "".join(out)


def format_header(name: str, value: str) -> list[str]:
    """The lines of a rewritten header (cleanup_fold_header): elements joined
    by ``, `` while the line stays under :data:`FOLD_WIDTH`, else continued
    on a new line that starts with a TAB."""
    pieces = [_externalize(element) for element in elements(value)]
    pieces = [piece for piece in pieces if piece] or [""]
    pieces = [piece + "," for piece in pieces[:-1]] + [pieces[-1]]
    lines = [f"{name}: {pieces[0]}"]
    for piece in pieces[1:]:
        if len(lines[-1]) + 1 + len(piece) < FOLD_WIDTH:
            lines[-1] += " " + piece
        else:
            lines.append(piece)
    return [lines[0]] + ["\t" + line for line in lines[1:]]


#: Rewrites one address (external form in, external form out).
AddressRewrite = Callable[[str], Awaitable[str]]


async def rewrite_value(value: str, rewrite: AddressRewrite) -> str | None:
    """``value`` with every address passed through ``rewrite``; None when no
    address changed."""
    spans = address_spans(value)
    changed = False
    out: list[str] = []
    last = 0
    for start, end in spans:
        old = value[start:end]
        new = await rewrite(old)
        changed |= new != old
        out.append(value[last:start])
        out.append(new)
        last = end
    out.append(value[last:])
    return "".join(out) if changed else None


@dataclass
class Header:
    """One header of the primary header section: its name as written and
    its lines (the first one starts with ``Name:``)."""

    name: str
    lines: list[str]

    @property
    def value(self) -> str:
        first = self.lines[0][len(self.name) + 1 :]
        return "\n".join([first, *self.lines[1:]])


def split_headers(lines: list[str]) -> tuple[list[Header | str], int]:
    """The primary header section: headers and stray lines, and the index of
    the first line after it (the empty line, or len(lines))."""
    out: list[Header | str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line == "":
            break
        match = _HEADER.match(line)
        if match is None:
            if line[:1] in (" ", "\t") and out and isinstance(out[-1], Header):
                out[-1].lines.append(line)
            else:
                out.append(line)
            index += 1
            continue
        out.append(Header(match.group(1), [line]))
        index += 1
    return out, index


async def _rewrite_header(
    item: Header, sender: bool, rewrite: HeaderAddressRewrite
) -> list[str] | None:
    async def one(address: str) -> str:
        return await rewrite(address, sender)

    value = await rewrite_value(item.value, one)
    # The name stays as written ("to:" stays "to:", recorded).
    return None if value is None else format_header(item.name, value)


#: Rewrites one address of a header: (address, is_sender_header) → address.
HeaderAddressRewrite = Callable[[str, bool], Awaitable[str]]


#: Header lines → their rewritten lines (None: unchanged), for a rewrite
#: that depends on nothing but the lines (see :func:`rewrite_headers`).
HeaderMemo = dict[tuple[str, ...], list[str] | None]
HEADER_MEMO_SIZE = 4096


async def rewrite_headers(
    lines: list[bytes], rewrite: HeaderAddressRewrite, memo: HeaderMemo | None = None
) -> list[bytes]:
    """The message with the addresses of its sender and recipient headers
    rewritten; everything else (body, MIME part headers, other headers) as is.
    ``memo``, when given, remembers each address header's result: only for a
    ``rewrite`` that is a pure function of the address (no table behind it).

    The header section is read as :func:`split_headers` reads it, on the
    bytes: only the address headers are decoded, and a new list is made
    only from the first header that changes (a message whose headers stay
    as they are comes back as it is, the same list)."""
    try:
        section = lines.index(b"")
    except ValueError:
        section = len(lines)
    out: list[bytes] | None = None
    index = 0
    while index < section:
        match = _HEADER_BYTES.match(lines[index])
        start = index
        index += 1
        if match is None:
            # A stray line (or a folded one after it): kept as it is.
            if out is not None:
                out.append(lines[start])
            continue
        while index < section and lines[index][:1] in (b" ", b"\t"):
            index += 1  # the header's folded lines
        lower = match.group(1).lower()
        done: list[str] | None = None
        if lower in _ADDRESS_NAMES:
            if index == start + 1:  # one line, the usual header (no comprehension)
                text = [lines[start].decode("utf-8", "surrogateescape")]
            else:
                text = [line.decode("utf-8", "surrogateescape") for line in lines[start:index]]
            key = tuple(text)
            done = memo.get(key, _UNKNOWN) if memo is not None else _UNKNOWN
            if done is _UNKNOWN:
                item = Header(match.group(1).decode("ascii"), text)
                done = await _rewrite_header(item, lower in _SENDER_NAMES, rewrite)
                if memo is not None:
                    if len(memo) >= HEADER_MEMO_SIZE:
                        memo.clear()
                    memo[key] = done
        if done is None:
            if out is not None:
                out.extend(lines[start:index])
            continue
        if out is None:
            out = lines[:start]
        out.extend(line.encode("utf-8", "surrogateescape") for line in done)
    if out is None:
        return lines
    return out + lines[section:]
