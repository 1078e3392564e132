"""DNS list result filters (``zen.example=127.0.0.[2..11]``), as Postfix's
ip_match(3) parses and matches them.

A pattern is four fields separated by ``.``; each field is a decimal octet
(0-255) or ``[...]`` holding ``;``-separated octets and ``low..high`` ranges
(``low <= high``).  ``[ ]`` around the whole pattern is dropped.  A field
cannot mix a number and a ``[...]`` sequence, and a sequence cannot span two
fields.  Errors carry Postfix's text with its context marker
(``need "." at "127.0>x<.0.2"``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: One field: the (low, high) octet ranges it accepts.
Field = tuple[tuple[int, int], ...]


class PatternError(ValueError):
    """A pattern Postfix's ip_match_parse() refuses; the text is Postfix's."""


@dataclass(frozen=True)
class AddressPattern:
    fields: tuple[Field, Field, Field, Field]

    def match(self, address: str) -> bool:
        """ip_match_execute(): the IPv4 ``address`` fits every field."""
        parts = address.split(".")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            return False
        return all(
            any(low <= int(octet) <= high for low, high in field)
            for octet, field in zip(parts, self.fields, strict=True)
        )


_EOF = ""
_ERR = "error"
_OCTET = "octet"


class _Tokens:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.saved = 0
        self.value = 0

    def next(self) -> str:
        """ip_match_next_token(): an octet value, one character, or EOF."""
        self.saved = self.pos
        text = self.text
        if self.pos < len(text) and text[self.pos].isascii() and text[self.pos].isdigit():
            value = 0
            kind = _OCTET
            while self.pos < len(text) and text[self.pos].isascii() and text[self.pos].isdigit():
                value = value * 10 + int(text[self.pos])
                if value > 255:
                    kind = _ERR
                self.pos += 1
            self.value = value
            return kind
        if self.pos >= len(text):
            return _EOF
        self.pos += 1
        return text[self.pos - 1]

    def error(self, what: str) -> PatternError:
        text = self.text
        before, here, rest = text[: self.saved], text[self.saved : self.pos], text[self.pos :]
        return PatternError(f'{what} at "{before}>{here}<{rest}"')


def _strip_brackets(pattern: str) -> str:
    if not pattern.startswith("["):
        return pattern
    level = 0
    for i, ch in enumerate(pattern):
        if ch == "[":
            level += 1
        if ch != "]":
            continue
        level -= 1
        if level == 0:
            return pattern[1:i] if i == len(pattern) - 1 else pattern
    raise PatternError('missing "]" character')


def parse(pattern: str) -> AddressPattern:
    """ip_match_parse(); raises :class:`PatternError`."""
    text = _strip_brackets(pattern)
    if not text:
        raise PatternError("empty address pattern")
    tokens = _Tokens(text)
    fields: list[Field] = []
    while True:
        kind = tokens.next()
        if kind == _OCTET:
            fields.append(((tokens.value, tokens.value),))
        elif kind == "[":
            fields.append(_sequence(tokens))
        else:
            raise tokens.error('need decimal number 0..255 or "["')
        if len(fields) == 4:
            if tokens.pos < len(text):
                tokens.next()
                raise tokens.error("garbage after pattern")
            return AddressPattern((fields[0], fields[1], fields[2], fields[3]))
        if tokens.next() != ".":
            raise tokens.error('need "."')


def _sequence(tokens: _Tokens) -> Field:
    members: list[tuple[int, int]] = []
    while True:
        if tokens.next() != _OCTET:
            raise tokens.error("need decimal number 0..255")
        low = tokens.value
        look = tokens.next()
        if look == ".":
            if tokens.next() == "." and tokens.next() == _OCTET and low <= tokens.value:
                members.append((low, tokens.value))
                look = tokens.next()
            else:
                raise tokens.error("numeric range error")
        else:
            members.append((low, low))
        if look == ";":
            continue
        if look == "]":
            return tuple(members)
        raise tokens.error('need ";" or "]"')
