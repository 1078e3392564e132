"""``cidr:/file`` — Postfix cidr_table(5): the first network that holds the key.

A table keyed by an IP address: in Postfix, the client address of
``check_client_access cidr:/etc/postfix/clients`` and the like, the smtpd
restriction stages mailhost is growing into.  Each logical line is a rule:

* ``pattern result`` — ``pattern`` is ``address/prefix`` or a bare address,
  IPv4 or IPv6, optionally in ``[...]`` (``[addr]/len`` or ``[addr/len]``);
* ``!pattern result`` — matches addresses of the pattern's family that are
  *outside* the network (any number of ``!`` and blanks toggle);
* ``if pattern`` ... ``endif`` (nestable, ``if !pattern``): the block is only
  consulted for addresses inside (outside) the network;
* comments, blank lines and continuation lines as in every Postfix source file.

The key must be an address (``inet_pton(3)``); anything else matches nothing.
A rule never matches an address of the other family, negated or not.  The
first matching rule wins.  Broken rules are skipped with Postfix's warning
``cidr map FILE, line N: WHY: skipping this rule``.

This is a port of Postfix 3.7.11's ``dict_cidr.c`` and ``cidr_match.c``, down
to their quirks (verified with postmap 3.7.11 in tests/tables/postfix_cidr.json):
the prefix length is ``atoi()`` stored in an ``unsigned char`` (``/288`` is
``/32``); addresses are parsed and printed as glibc's ``inet_pton`` /
``inet_ntop`` do, not as :mod:`ipaddress` does (no leading zeros in IPv4, no
``%scope``, ``::ffff:1.2.3.0`` printed with a dotted quad); whitespace is C's
``isspace`` in the C locale, so a line starting with a form feed continues the
previous one (which is why this module reads its own logical lines instead of
using the main.cf lexer, whose whitespace is only blanks and tabs).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from mailhost.log import logger
from mailhost.tables.base import Table
from mailhost.tables.registry import OpenContext
from mailhost.tables.source import read_source

log = logger("tables")

#: C ``isspace()`` in the C locale (Postfix's ISSPACE).
SPACE = " \t\n\v\f\r"
_DIGITS = "0123456789"
_ALNUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX = {c: int(c, 16) for c in "0123456789abcdefABCDEF"}
_LONG_MAX = 2**63 - 1


class CidrSyntaxError(ValueError):
    """A rule Postfix skips; the message is Postfix's reason text."""


# --- glibc inet_pton / inet_ntop -------------------------------------------


def inet_pton4(text: str) -> bytes | None:
    """glibc ``inet_pton(AF_INET)``: exactly four decimal octets, no leading zeros."""
    octets: list[int] = []
    saw_digit = False
    for ch in text:
        if ch in _DIGITS:
            if saw_digit and octets[-1] == 0:
                return None
            if not saw_digit:
                if len(octets) == 4:
                    return None
                octets.append(0)
                saw_digit = True
            octets[-1] = octets[-1] * 10 + int(ch)
            if octets[-1] > 255:
                return None
        elif ch == "." and saw_digit:
            if len(octets) == 4:
                return None
            saw_digit = False
        else:
            return None
    if len(octets) < 4:
        return None
    return bytes(octets)


def inet_pton6(text: str) -> bytes | None:
    """glibc ``inet_pton(AF_INET6)`` (glibc ≥ 2.26): ``::`` once and for at
    least one zero group, up to four hex digits a group, a trailing dotted quad."""
    if not text:
        return None
    src = text
    if src[0] == ":":
        if len(src) < 2 or src[1] != ":":
            return None
        src = src[1:]
    out = bytearray()
    colon_at: int | None = None
    digits, value = 0, 0
    i = 0
    while i < len(src):
        ch = src[i]
        i += 1
        if ch in _HEX:
            if digits == 4:
                return None
            value = (value << 4) | _HEX[ch]
            digits += 1
            continue
        if ch == ":":
            if digits == 0:
                if colon_at is not None:
                    return None
                colon_at = len(out)
                continue
            if i == len(src) or len(out) + 2 > 16:
                return None
            out += value.to_bytes(2, "big")
            digits, value = 0, 0
            continue
        if ch == "." and len(out) + 4 <= 16:
            # the dotted quad runs from after the last ':' to the end
            quad = inet_pton4(src[src.rfind(":", 0, i) + 1 :])
            if quad is not None:
                out += quad
                digits = 0
                break
        return None
    if digits:
        if len(out) + 2 > 16:
            return None
        out += value.to_bytes(2, "big")
    if colon_at is not None:
        if len(out) == 16:
            return None
        out[colon_at:colon_at] = bytes(16 - len(out))
    return bytes(out) if len(out) == 16 else None


def inet_pton(text: str) -> tuple[int, bytes] | None:
    """(bits, address bytes); the family is IPv6 when the text has a ``:``, as
    Postfix's CIDR_MATCH_ADDR_FAMILY decides."""
    if ":" in text:
        packed = inet_pton6(text)
        return None if packed is None else (128, packed)
    packed = inet_pton4(text)
    return None if packed is None else (32, packed)


def inet_ntop(packed: bytes) -> str:
    """glibc ``inet_ntop``: the longest run (first of equals, at least two) of
    zero groups as ``::``; IPv4-compatible and -mapped addresses end in a dotted quad."""
    if len(packed) == 4:
        return ".".join(str(b) for b in packed)
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    best_base, best_len, cur_base, cur_len = -1, 0, -1, 0
    for i, word in enumerate([*words, 1]):
        if word == 0:
            cur_base, cur_len = (i, 1) if cur_base == -1 else (cur_base, cur_len + 1)
        elif cur_base != -1:
            if best_base == -1 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if best_len < 2:
        best_base = -1
    out = ""
    for i, word in enumerate(words):
        if best_base != -1 and best_base <= i < best_base + best_len:
            if i == best_base:
                out += ":"
            continue
        if i:
            out += ":"
        if i == 6 and best_base == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
            return out + inet_ntop(packed[12:])
        out += f"{word:x}"
    if best_base != -1 and best_base + best_len == 8:
        out += ":"
    return out


# --- patterns and rules ------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """One ``[!]network/prefix``: the family (32 or 128 bits), network and mask."""

    bits: int
    network: int
    mask: int
    match: bool = True

    def hit(self, bits: int, address: int) -> bool:
        """Postfix's cidr_match_entry(), for an address of the same family only."""
        return bits == self.bits and ((address & self.mask) == self.network) == self.match


def _atoi_uchar(digits: str) -> int:
    """``(unsigned char) atoi(digits)`` as glibc computes it (strtol saturates)."""
    stripped = digits.lstrip("0")
    value = _LONG_MAX if len(stripped) > 19 else min(int(stripped or "0"), _LONG_MAX)
    return value & 0xFF


def parse_pattern(pattern: str, match: bool = True) -> Pattern:
    """cidr_match_parse(): ``addr``, ``addr/len``, ``[addr]``, ``[addr]/len``,
    ``[addr/len]``; raises :class:`CidrSyntaxError` with Postfix's reason."""
    mask_text: str | None
    if pattern.startswith("["):
        pattern, sep, after = pattern[1:].partition("]")
        if not sep:
            raise CidrSyntaxError(f"missing ']' character after \"[{pattern}\"")
        if after.startswith("/"):
            mask_text = after[1:]
        elif after:
            raise CidrSyntaxError(f'garbage after "[{pattern}]"')
        else:
            pattern, sep, mask_text = pattern.partition("/")
            mask_text = mask_text if sep else None
    else:
        pattern, sep, mask_text = pattern.partition("/")
        mask_text = mask_text if sep else None
    bits = 128 if ":" in pattern else 32
    if mask_text is None:
        packed = inet_pton(pattern)
        if packed is None:
            raise CidrSyntaxError(f'bad address pattern: "{pattern}"')
        return Pattern(bits, int.from_bytes(packed[1], "big"), (1 << bits) - 1, match)
    shift = 0
    if not mask_text or any(c not in _DIGITS for c in mask_text):
        error = "bad mask value"
    elif (shift := _atoi_uchar(mask_text)) > bits:
        error = "bad mask length"
    elif (parsed := inet_pton(pattern)) is None:
        error = "bad network value"
    else:
        error = ""
    if error:
        raise CidrSyntaxError(f'{error} in "{pattern}/{mask_text}"')
    assert parsed is not None
    network = int.from_bytes(parsed[1], "big")
    mask = ((1 << bits) - 1) ^ ((1 << (bits - shift)) - 1)
    if network & ~mask:
        better = inet_ntop((network & mask).to_bytes(bits // 8, "big"))
        raise CidrSyntaxError(
            f'non-null host address bits in "{pattern}/{mask_text}", '
            f'perhaps you should use "{better}/{shift}" instead'
        )
    return Pattern(bits, network, mask, match)


@dataclass
class Rule:
    kind: str  # "match", "if" or "endif"
    lineno: int
    pattern: Pattern | None = None
    value: str = ""
    end: int | None = None  # for "if": the index of its endif


def _keyword(text: str, word: str) -> bool:
    """strncasecmp(text, word) == 0 && !ISALNUM(next character)."""
    n = len(word)
    return text[:n].lower() == word and (len(text) == n or text[n] not in _ALNUM)


def _negations(text: str) -> tuple[str, bool]:
    """Skip ``!`` and blanks; each ``!`` toggles the match."""
    match = True
    i = 0
    while i < len(text) and (text[i] == "!" or text[i] in SPACE):
        match = match != (text[i] == "!")
        i += 1
    return text[i:], match


def parse_rule(text: str, lineno: int, nesting: int) -> Rule:
    """dict_cidr_parse_rule() for one logical line; raises :class:`CidrSyntaxError`."""
    if _keyword(text, "if"):
        rest, match = _negations(text[2:])
        if not rest:
            raise CidrSyntaxError("no address pattern")
        return Rule("if", lineno, parse_pattern(rest.rstrip(SPACE), match))
    if _keyword(text, "endif"):
        if text[5:].lstrip(SPACE):
            raise CidrSyntaxError("garbage after ENDIF")
        if nesting == 0:
            raise CidrSyntaxError("ENDIF without IF")
        return Rule("endif", lineno)
    rest, match = _negations(text)
    end = next((i for i, c in enumerate(rest) if c in SPACE), len(rest))
    pattern, value = rest[:end], rest[end:].strip(SPACE)
    if not pattern:
        raise CidrSyntaxError("no address pattern")
    parsed = parse_pattern(pattern, match)
    if not value:
        raise CidrSyntaxError("no lookup result")
    return Rule("match", lineno, parsed, value)


def logical_lines(text: str, filename: str) -> Iterator[tuple[int, str]]:
    """Postfix readllines(): (first line number, logical line).  A line whose
    first character is C whitespace continues the previous one; whitespace-only
    and ``#`` lines are dropped, also between a line and its continuation."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    current: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=1):
        stripped = line.lstrip(SPACE)
        if not stripped or stripped.startswith("#"):
            continue
        if current and line[0] in SPACE:
            current.append(line)
            continue
        if current:
            yield from _emit(start, current, filename)
        current, start = [line], number
    if current:
        yield from _emit(start, current, filename)


def _emit(start: int, parts: list[str], filename: str) -> Iterator[tuple[int, str]]:
    text = "".join(parts)
    if text[0] in SPACE:
        more = "..." if len(text) > 30 else ""
        log.warning('%s: logical line must not start with whitespace: "%.30s%s"',
                    filename, text, more)  # fmt: skip
        return
    yield start, text


def parse_rules(text: str, filename: str) -> list[Rule]:
    """Every usable rule of a cidr table, with Postfix's warnings for the rest."""
    rules: list[Rule] = []
    open_ifs: list[int] = []
    for lineno, line in logical_lines(text, filename):
        try:
            rule = parse_rule(line, lineno, len(open_ifs))
        except CidrSyntaxError as exc:
            log.warning("cidr map %s, line %d: %s: skipping this rule", filename, lineno, exc)
            continue
        if rule.kind == "if":
            open_ifs.append(len(rules))
        elif rule.kind == "endif":
            rules[open_ifs.pop()].end = len(rules)
        rules.append(rule)
    for index in reversed(open_ifs):
        log.warning("cidr map %s, line %d: IF has no matching ENDIF", filename, rules[index].lineno)
    return rules


def match_rules(rules: list[Rule], key: str) -> str | None:
    """cidr_match_execute(): the value of the first rule that matches ``key``."""
    parsed = inet_pton(key)
    if parsed is None:
        return None
    bits, address = parsed[0], int.from_bytes(parsed[1], "big")
    i = 0
    while i < len(rules):
        rule = rules[i]
        if rule.pattern is not None and not rule.pattern.hit(bits, address):
            if rule.kind == "if":
                if rule.end is None:
                    return None  # an IF without ENDIF hides the rest of the file
                i = rule.end
        elif rule.kind == "match":
            return rule.value
        i += 1
    return None


#: How many keys a cidr table's answers are kept for.
ANSWERS_KEPT = 4096


class CidrTable(Table):
    type_name: ClassVar[str] = "cidr"
    fixed: ClassVar[bool] = False

    def __init__(self, name: str, rules: list[Rule]) -> None:
        super().__init__(name, fold=False)
        self.rules = rules
        #: Answers by key: the rules are fixed once read, and the client's
        #: address and name are asked again at every RCPT (inet_pton and the
        #: rule walk are character loops in Python).
        self._answers: dict[str, str | None] = {}

    def _answer(self, key: str) -> str | None:
        answers = self._answers
        if key in answers:
            return answers[key]
        value = match_rules(self.rules, key)
        if len(answers) >= ANSWERS_KEPT:
            answers.clear()
        answers[key] = value
        return value

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        return cls(name, parse_rules(read_source(name), name))

    def peek(self, key: str) -> tuple[str | None] | None:
        try:
            return (self._answer(key),)
        except Exception:  # lookup() reports it as a table error
            return None

    async def _lookup(self, key: str) -> str | None:
        return self._answer(key)


TABLE_TYPE = CidrTable
