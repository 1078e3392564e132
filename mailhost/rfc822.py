"""RFC 822 / RFC 5322 message helpers: address lists, as found in message
headers and in ``sendmail -f 'Name <addr>'``; the date as Postfix writes it
(:func:`mail_date`, in ``Received:``, ``Date:`` and bounces); the
``Message-ID`` of a header section (:func:`message_id`, logged by cleanup).

Where this sits in the pipeline: the sendmail command parses its ``-f``
argument and, with ``-t``, the ``To:``/``Cc:``/``Bcc:`` headers with
:func:`parse_address_list`; cleanup (:mod:`mailhost.cleanup.headers`) uses the
spans it returns to qualify unqualified header addresses in place, so the rest
of a header keeps its exact bytes (Postfix rewrites the parsed token tree and
writes it back only when an address changed; where nothing changes the header
is untouched, the same here).

The tokenizer follows Postfix's tok822(3) in what it accepts: quoted strings
(with backslash escapes), nested comments, domain literals ``[...]``, angle
addresses with an optional source route (``<@a,@b:user@dom>``), groups
(``name: a, b;``), and it never fails: unbalanced quotes, comments or angle
brackets extend to the end of the text, as tok822 does with bad input.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from mailhost.address import internal_form, last_unquoted_at

_SPECIALS = frozenset('<>,;:@.[]"()\\')
_BLANK = frozenset(" \t\r\n")


@dataclass(frozen=True)
class Token:
    kind: str  # "atom", "quoted", "comment", "literal" or the special character
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Mailbox:
    """One address of a list: ``address`` in internal form (``""`` for ``<>``),
    ``external`` as written (quotes kept, comments and blanks dropped), and the
    span ``start:end`` of the addr-spec in the header text."""

    address: str
    external: str
    start: int
    end: int


def _skip_delimited(text: str, i: int, close: str, nest: str | None) -> int:
    """Index after the closing character of a quoted string / comment /
    literal opened at ``i`` (end of text when unterminated)."""
    depth = 1
    i += 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if nest is not None and char == nest:
            depth += 1
        elif char == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def tokenize(text: str) -> list[Token]:
    """The RFC 822 tokens of a header value (blanks dropped)."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in _BLANK:
            i += 1
        elif char == '"':
            end = _skip_delimited(text, i, '"', None)
            tokens.append(Token("quoted", text[i:end], i, end))
            i = end
        elif char == "(":
            end = _skip_delimited(text, i, ")", "(")
            tokens.append(Token("comment", text[i:end], i, end))
            i = end
        elif char == "[":
            end = _skip_delimited(text, i, "]", None)
            tokens.append(Token("literal", text[i:end], i, end))
            i = end
        elif char in _SPECIALS and char != "\\":
            tokens.append(Token(char, char, i, i + 1))
            i += 1
        else:
            start = i
            while (
                i < len(text)
                and text[i] not in _BLANK
                and (text[i] not in _SPECIALS or text[i] == "\\")
            ):
                i += 2 if text[i] == "\\" else 1
            i = min(i, len(text))
            tokens.append(Token("atom", text[start:i], start, i))
    return tokens


def _mailbox(tokens: list[Token]) -> Mailbox | None:
    """The addr-spec of one list element (tokens without comments)."""
    if not tokens:
        return None
    opens = [n for n, t in enumerate(tokens) if t.kind == "<"]
    if opens:
        first = opens[0]
        closes = [n for n, t in enumerate(tokens) if t.kind == ">" and n > first]
        inner = tokens[first + 1 : closes[0] if closes else len(tokens)]
        # A source route (@a,@b:) is not part of the mailbox (RFC 5321 3.3).
        colons = [n for n, t in enumerate(inner) if t.kind == ":"]
        if inner and inner[0].kind == "@" and colons:
            inner = inner[colons[0] + 1 :]
        if not inner:
            # "<>": the null address; its span is the empty text inside.
            at = tokens[first].end
            return Mailbox("", "", at, at)
        spec = inner
    else:
        spec = tokens
    external = "".join(t.text for t in spec)
    return Mailbox(internal_form(external), external, spec[0].start, spec[-1].end)


def parse_address_list(text: str) -> list[Mailbox]:
    """Every mailbox of an address list, groups flattened, in order."""
    out: list[Mailbox] = []
    element: list[Token] = []
    depth = 0  # inside <...>

    def flush() -> None:
        box = _mailbox(element)
        if box is not None:
            out.append(box)
        element.clear()

    for token in tokenize(text):
        if token.kind == "comment":
            continue
        if token.kind == "<":
            depth += 1
        elif token.kind == ">":
            depth = max(0, depth - 1)
        elif depth == 0 and token.kind in (",", ";"):
            flush()
            continue
        elif depth == 0 and token.kind == ":":
            # "group-name:" — what came before is the group's display name.
            element.clear()
            continue
        element.append(token)
    flush()
    return out


def first_address(text: str) -> tuple[str, int]:
    """``sendmail -f``: the first address of ``text`` (``""`` for the null
    sender or an empty text) and how many addresses there were."""
    boxes = parse_address_list(text)
    if not boxes:
        return "", 0
    return boxes[0].address, len(boxes)


def has_domain(external: str) -> bool:
    """True when an addr-spec has an unquoted ``@``."""
    return last_unquoted_at(external) >= 0


_NO_SPACE_BEFORE = frozenset({",", ";", ">", ".", "@", ":", "]"})
_NO_SPACE_AFTER = frozenset({"<", "@", ".", "["})


def externalize(value: str) -> str:
    """A header value written back from its tokens, the way Postfix's
    tok822_externalize() does after cleanup changed an address: one space
    between words, none around ``@`` and ``.`` or inside ``<...>``, a space
    before a comment and after a group's colon, and a line break (``\\n``)
    after each comma, for :func:`fold` to join."""
    out: list[str] = []
    previous: Token | None = None
    for token in tokenize(value):
        if previous is not None:
            if previous.kind == ",":
                out.append("\n")
            elif token.kind in _NO_SPACE_BEFORE or previous.kind in _NO_SPACE_AFTER:
                pass
            else:
                out.append(" ")
        out.append(token.text)
        previous = token
    return "".join(out)


#: Postfix cleanup_fold_header(): lines are joined while shorter than this.
FOLD_LENGTH = 70


def fold(header: str) -> list[str]:
    """Join the comma-separated lines of a rewritten header while the joined
    line stays under :data:`FOLD_LENGTH` characters (Postfix
    cleanup_fold_header); continuation lines start with a TAB."""
    lines: list[str] = []
    for part in header.split("\n"):
        if lines and len(lines[-1]) + 1 + len(part) < FOLD_LENGTH:
            lines[-1] += " " + part
        else:
            lines.append(part)
    return [lines[0], *("\t" + line for line in lines[1:])]


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def mail_date(when: float | None = None) -> str:
    """``Sat, 28 Nov 2026 17:08:35 +0000 (UTC)`` in local time, C-locale names;
    the day of the month is padded with a space (strftime ``%e``), as Postfix
    writes ``Tue,  1 Dec 2026`` (recorded, tests/sendmail/postfix_sendmail.json)."""
    global _last_date  # noqa: PLW0603 - a one-entry cache: one text per second
    second = math.floor(time.time() if when is None else when)
    zone = time.tzname  # a new tuple after each time.tzset()
    cached = _last_date
    if cached[0] == second and cached[1] is zone:
        return cached[2]  # (every message of a second: one text)
    t = time.localtime(second)
    offset = t.tm_gmtoff or 0
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    text = (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:2d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{hours:02d}{minutes:02d} "
        f"({t.tm_zone})"
    )
    _last_date = (second, zone, text)
    return text


#: mail_date()'s last second, the time.tzname it was made with, and its text.
_last_date: tuple[int | None, tuple[str, str] | None, str] = (None, None, "")


_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*)$", re.IGNORECASE)


def message_id(lines: list[bytes]) -> str:
    """The Message-ID header's value without brackets ("" when absent), from
    the header section only (up to the first empty line)."""
    for index, line in enumerate(lines):
        if not line:
            break
        match = _MESSAGE_ID.match(line)
        if match is None:
            continue
        value = match.group(1)
        for cont in lines[index + 1 :]:
            if cont[:1] not in (b" ", b"\t"):
                break
            value += cont
        text = value.decode("utf-8", "replace").strip()
        return text[1:-1] if text.startswith("<") and text.endswith(">") else text
    return ""
