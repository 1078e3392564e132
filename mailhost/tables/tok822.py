"""RFC 822 tokens as Postfix's tok822 library scans and prints them.

postalias(1) tokenizes each ``name: value`` line, so that a quoted name may
hold ``:`` or ``@``, and stores the value re-printed in *external* (quoted)
form; local(8) re-parses that value into addresses at delivery time and uses
each one in *internal* (unquoted) form.  Those three steps live here, as plain
functions (DESIGN rule 5):

* :func:`scan` — a flat token list (``tok822_scan``): white space separates
  tokens and is dropped; ``(comments)`` nest; ``"quoted strings"`` and
  ``[domain literals]`` end at their closing character or at the end of the
  text; a backslash escapes the next character; ``()<>@,;:\\".[]`` are
  one-character operators; anything else runs into an atom.  An atom that
  holds a character needing quotes (from a backslash escape) becomes a quoted
  string.
* :func:`externalize` / :func:`internalize` — print tokens back, with one
  space between two non-operator tokens, after a comma and before ``<``
  (``tok822_append_space``); external form re-quotes quoted strings.
* :func:`split_addresses` — the members of an alias value, split at commas
  outside quotes, comments and angle brackets, in internal form, with
  comments and ``Phrase <...>`` display names dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ATOM = "atom"
QSTRING = "qstring"
COMMENT = "comment"
DOMLIT = "domlit"

#: tok822's operator characters (RFC 822 specials).
OPERATORS = frozenset('()<>@,;:\\".[]|%!')
_SPACE = frozenset(" \t\r\n\v\f")
#: Inside quotes and atoms these become a plain space (tok822's COLLECT).
_SPACE_TAB_CR_LF = frozenset(" \t\r\n")
_NON_OPERATOR = frozenset({ATOM, QSTRING, COMMENT, DOMLIT})
#: Characters tok822_externalize() escapes inside "..." and [...].
_QSTRING_SPECIALS = '"\\\r\n'
_DOMLIT_SPECIALS = "\\\r\n"


@dataclass(frozen=True)
class Token:
    """``kind`` is ATOM, QSTRING, COMMENT, DOMLIT or the operator character;
    ``text`` the token's content (for a comment: with its parentheses; for a
    quoted string or domain literal: without the delimiters, unescaped)."""

    kind: str
    text: str = ""


def _needs_quote(atom: str) -> bool:
    return any(ch in OPERATORS or ch in _SPACE or ord(ch) < 32 or ord(ch) == 127 for ch in atom)


def _quoted(text: str, i: int, close: str) -> tuple[str, int]:
    """Content up to ``close`` (escapes removed) and the index after it."""
    out: list[str] = []
    n = len(text)
    while i < n:
        ch = text[i]
        i += 1
        if ch == "\\":
            if i >= n:
                break
            ch = text[i]
            i += 1
        elif ch == close:
            break
        out.append(" " if ch in _SPACE_TAB_CR_LF else ch)
    return "".join(out), i


def _comment(text: str, i: int) -> tuple[str, int]:
    """A possibly nested comment (``i`` is after the opening parenthesis);
    the text keeps the parentheses (the closing one only when present) and
    the backslash escapes."""
    out = ["("]
    level = 1
    n = len(text)
    while i < n:
        ch = text[i]
        i += 1
        if ch == "\\":
            out.append(ch)
            if i >= n:
                break
            ch = text[i]
            i += 1
        elif ch == "(":
            level += 1
        elif ch == ")":
            level -= 1
            if level == 0:
                out.append(ch)
                break
        out.append(ch)
    return "".join(out), i


def scan(text: str) -> list[Token]:
    """The flat token list of ``text`` (never fails: unterminated quotes,
    comments and literals end at the end of the text)."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            i += 1
        elif ch == "(":
            body, i = _comment(text, i + 1)
            tokens.append(Token(COMMENT, body))
        elif ch == "[":
            body, i = _quoted(text, i + 1, "]")
            tokens.append(Token(DOMLIT, body))
        elif ch == '"':
            body, i = _quoted(text, i + 1, '"')
            tokens.append(Token(QSTRING, body))
        elif ch != "\\" and ch in OPERATORS:
            tokens.append(Token(ch))
            i += 1
        else:
            out: list[str] = []
            escaped = False
            while i < n:
                c = text[i]
                if c == "\\":
                    i += 1
                    if i >= n:
                        break
                    c = text[i]
                    escaped = True
                elif c in _SPACE or c in OPERATORS:
                    break
                out.append(" " if c in _SPACE_TAB_CR_LF else c)
                i += 1
            atom = "".join(out)
            if escaped and _needs_quote(atom):
                tokens.append(Token(QSTRING, atom))
            elif atom:
                tokens.append(Token(ATOM, atom))
    return tokens


def _space_after(tok: Token, nxt: Token | None) -> bool:
    if nxt is None:
        return False
    if nxt.kind == "<":
        return True
    return tok.kind in _NON_OPERATOR and nxt.kind in _NON_OPERATOR


def _escape(text: str, specials: str) -> str:
    return "".join("\\" + ch if ch in specials else ch for ch in text)


def _print(tokens: Sequence[Token], external: bool) -> str:
    out: list[str] = []
    for i, tok in enumerate(tokens):
        if tok.kind == QSTRING:
            out.append(f'"{_escape(tok.text, _QSTRING_SPECIALS)}"' if external else tok.text)
        elif tok.kind == DOMLIT:
            text = _escape(tok.text, _DOMLIT_SPECIALS) if external else tok.text
            out.append(f"[{text}]")
        elif tok.kind in (ATOM, COMMENT):
            out.append(tok.text)
        elif tok.kind == ",":
            out.append(", ")  # tok822 always writes a blank after a comma
            continue
        else:
            out.append(tok.kind)
        if _space_after(tok, tokens[i + 1] if i + 1 < len(tokens) else None):
            out.append(" ")
    return "".join(out)


def externalize(tokens: Sequence[Token]) -> str:
    """Tokens printed in external (quoted) form (``tok822_externalize``)."""
    return _print(tokens, external=True)


def internalize(tokens: Sequence[Token]) -> str:
    """Tokens printed in internal (unquoted) form (``tok822_internalize``)."""
    return _print(tokens, external=False)


def _members(tokens: Iterable[Token]) -> Iterable[list[Token]]:
    """Tokens grouped at top-level commas (commas inside ``<...>`` do not split)."""
    current: list[Token] = []
    depth = 0
    for tok in tokens:
        if tok.kind == "<":
            depth += 1
        elif tok.kind == ">":
            depth = max(0, depth - 1)
        elif tok.kind == "," and depth == 0:
            yield current
            current = []
            continue
        current.append(tok)
    yield current


def _address_part(member: list[Token]) -> list[Token]:
    """The address of one member: comments dropped; ``Phrase <addr>`` → addr."""
    tokens = [t for t in member if t.kind != COMMENT]
    kinds = [t.kind for t in tokens]
    if "<" in kinds:
        start = kinds.index("<") + 1
        end = kinds.index(">", start) if ">" in kinds[start:] else len(tokens)
        tokens = tokens[start:end]
    return tokens


def split_addresses(value: str) -> list[str]:
    """The members of an alias value in internal form, empty ones dropped.

    A member that starts ``:include:`` keeps its colons (it is not an RFC 822
    group); ``"|command with args"`` and ``"/file name"`` lose their quotes.
    """
    result: list[str] = []
    for member in _members(scan(value)):
        address = internalize(_address_part(member)).strip()
        if address:
            result.append(address)
    return result
