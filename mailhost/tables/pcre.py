"""``pcre:/file`` — Postfix pcre_table(5): Perl-compatible regular expressions.

Each logical line is ``/pattern/flags result``, ``!/pattern/flags result``,
``if /pattern/flags`` ... ``endif`` (nestable; ``!`` may repeat and toggles) —
any non-alphanumeric character may stand in for ``/``.  Flags toggle
(dict_pcre.c): ``i`` caseless (default on), ``s`` dot-all (default on), ``m``
multi-line, ``x`` extended, ``A`` anchored, ``E`` dollar-end-only, ``U``
ungreedy; ``X`` is obsolete with PCRE2 and only warned about.  The first
matching rule wins; ``$1``.. ``${n}`` ``$(n)`` insert groups (an unmatched
group inserts nothing) and ``$$`` is a ``$``.  Keys are matched as given, as
bytes (Postfix does not set PCRE2_UTF; see :mod:`mailhost.tables.pcre_syntax`).

Warnings match postmap 3.7.11's texts.  A valid PCRE construct that Python's
``re`` cannot match exactly makes the table fail to open
(:class:`~mailhost.errors.TableOpenError`), naming file, line and construct:
a different answer is never given silently.
"""

from __future__ import annotations

import re
from typing import ClassVar

from mailhost.config.maincf import logical_lines
from mailhost.errors import TableOpenError, TableTempFail
from mailhost.log import logger
from mailhost.tables.base import Table
from mailhost.tables.patterns import Rule, first_match, split_pattern
from mailhost.tables.pcre_syntax import PcreError, Unsupported, translate
from mailhost.tables.registry import OpenContext
from mailhost.tables.source import read_source

log = logger("tables")
_SPACE = " \t\n\r\f\v"  # Postfix's ISSPACE


class PcreUnsupportedError(TableOpenError):
    """A pcre table uses a construct mailhost cannot match exactly."""


class _Skip(Exception):  # control flow: the rule is skipped, already warned
    pass


def mac_parse(text: str, where: str) -> list[tuple[str, str]]:
    """Postfix mac_parse(3): [("literal"|"name", text)] of a replacement;
    ``$$`` is ``$``.  Warns and raises :class:`_Skip` on Postfix's errors."""
    parts: list[tuple[str, str]] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "$":
            buf.append(ch)
            i += 1
            continue
        if text.startswith("$$", i):
            buf.append("$")
            i += 2
            continue
        if buf:
            parts.append(("literal", "".join(buf)))
            buf = []
        i += 1
        if i < len(text) and text[i] in "({":
            close = ")" if text[i] == "(" else "}"
            level, j = 1, i + 1
            while level > 0:
                if j >= len(text):
                    log.warning('truncated macro reference: "%s"', text)
                    raise _Skip
                level += text[j] == text[i]
                level -= text[j] == close
                j += 1
            name, i = text[i + 1 : j - 1], j
        else:
            m = re.compile(r"[A-Za-z0-9_]*").match(text, i)
            assert m is not None
            name, i = m.group(), m.end()
        if not name:
            log.warning('empty macro name: "%s"', text)
            raise _Skip
        if not _check_index(name, where):
            raise _Skip  # mac_parse stops at the first error
        parts.append(("name", name))
    if buf:
        parts.append(("literal", "".join(buf)))
    return parts


def _check_index(name: str, where: str) -> bool:
    if not name.isascii() or not name.isdigit():
        log.warning('%s: non-numeric replacement index "%s"', where, name)
        return False
    if int(name) < 1:
        log.warning('%s: out of range replacement index "%s"', where, name)
        return False
    return True


def _compile(where: str, pattern: str, flags: str) -> tuple[re.Pattern[bytes], bool]:
    """The compiled rule and whether it is anchored; warns and raises _Skip."""
    icase, dotall, multiline, extended, anchored, endonly, ungreedy = (
        True, True, False, False, False, False, False,
    )  # fmt: skip
    for flag in flags:
        if flag == "i":
            icase = not icase
        elif flag == "s":
            dotall = not dotall
        elif flag == "m":
            multiline = not multiline
        elif flag == "x":
            extended = not extended
        elif flag == "A":
            anchored = not anchored
        elif flag == "E":
            endonly = not endonly
        elif flag == "U":
            ungreedy = not ungreedy
        elif flag == "X":
            log.warning('%s: ignoring obsolete regexp option "X"', where)
        else:
            log.warning('%s: unknown regexp option "%s": skipping this rule', where, flag)
            raise _Skip
    raw = pattern.encode("utf-8", "surrogateescape").decode("latin-1")
    try:
        text = translate(
            raw, extended=extended, ungreedy=ungreedy, multiline=multiline, dollar_endonly=endonly
        ).pattern
    except PcreError as exc:
        log.warning("%s: %s", where, exc)
        raise _Skip from None
    except Unsupported as exc:
        raise PcreUnsupportedError(_refusal(where, exc.construct)) from None
    options = (re.IGNORECASE if icase else 0) | (re.DOTALL if dotall else 0)
    options |= re.MULTILINE if multiline else 0
    try:
        return re.compile(text.encode("latin-1"), options), anchored
    except re.error as exc:  # e.g. a variable-length look-behind
        raise PcreUnsupportedError(_refusal(where, f"{pattern} ({exc})")) from None


def _refusal(where: str, construct: str) -> str:
    return (
        f'{where}: unsupported PCRE construct "{construct}": '
        "Python's re cannot match it exactly as PCRE2 does"
    )


def _isalnum(text: str) -> bool:
    """Postfix's ISALNUM (C locale): ASCII letters and digits only."""
    return text.isascii() and text.isalnum()


def _parse_rule(body: str, where: str) -> Rule:
    """One logical line → a Rule (dict_pcre_parse_rule); warns and raises _Skip."""
    is_if = body[:2].lower() == "if" and not _isalnum(body[2:3])
    if body[:5].lower() == "endif" and not _isalnum(body[5:6]):
        return Rule("endif")
    if not _isalnum(body[0]) or is_if:
        if is_if:
            body = body[2:].lstrip(_SPACE)
        negated = False
        while body[:1] and body[0] in "!" + _SPACE:
            negated ^= body[0] == "!"
            body = body[1:]
        if not body:
            log.warning("%s: no regexp: skipping this rule", where)
            raise _Skip
        parts = split_pattern(body)
        if parts is None:
            log.warning('%s: no closing regexp delimiter "%s": ignoring this rule', where, body[0])
            raise _Skip
        pattern, flags, rest = parts
        if is_if:
            if rest:
                log.warning('%s: ignoring extra text after IF statement: "%s"', where, rest)
                log.warning("%s: do not prepend whitespace to statements between IF and ENDIF",
                            where)  # fmt: skip
            regex, anchored = _compile(where, pattern, flags)
            return Rule("if", regex, negated, anchored=anchored)
        if not rest:
            log.warning("%s: no replacement text: using empty string", where)
        try:
            names = [text for kind, text in mac_parse(rest, where) if kind == "name"]
        except _Skip:
            log.warning("%s: bad replacement syntax: skipping this rule", where)
            raise
        if names and negated:
            log.warning("%s: $number found in negative match replacement text: "
                        "skipping this rule", where)  # fmt: skip
            raise _Skip
        regex, anchored = _compile(where, pattern, flags)
        top = max((int(name) for name in names), default=0)
        if top > regex.groups:
            log.warning('%s: out of range replacement index "%d": skipping this rule', where, top)
            raise _Skip
        return Rule("match", regex, negated, rest, anchored=anchored)
    log.warning("%s: ignoring unrecognized request", where)
    raise _Skip


def parse_rules(text: str, filename: str) -> list[Rule]:
    rules: list[Rule] = []
    open_ifs: list[int] = []
    for line in logical_lines(text.splitlines(), filename):
        where = f"pcre map {filename}, line {line.lineno}"
        if not line.text:
            continue
        try:
            rule = _parse_rule(line.text, where)
        except _Skip:
            continue
        if rule.kind == "endif":
            if not open_ifs:
                log.warning("%s: ignoring ENDIF without matching IF", where)
                continue
            if line.text[5:].strip():
                log.warning("%s: ignoring extra text after ENDIF", where)
            rules[open_ifs.pop()].endif = len(rules)
        rule.lineno = line.lineno
        if rule.kind == "if":
            open_ifs.append(len(rules))
        rules.append(rule)
    for index in reversed(open_ifs):
        log.warning("pcre map %s, line %d: IF has no matching ENDIF", filename, rules[index].lineno)
        rules[index].endif = len(rules)
    return rules


def expand(result: str, match: re.Match[bytes]) -> str:
    """The replacement with ``$n`` expanded (an unmatched group: nothing)."""
    out: list[bytes] = []
    for kind, text in mac_parse(result, "pcre"):
        if kind == "literal":
            out.append(text.encode("utf-8", "surrogateescape"))
        else:
            out.append(match.group(int(text)) or b"")
    return b"".join(out).decode("utf-8", "surrogateescape")


class PcreTable(Table):
    type_name: ClassVar[str] = "pcre"
    fixed: ClassVar[bool] = False

    def __init__(self, name: str, rules: list[Rule]) -> None:
        super().__init__(name, fold=False)
        self.rules = rules

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        return cls(name, parse_rules(read_source(name), name))

    async def _lookup(self, key: str) -> str | None:
        # Postfix's dict_utf8 layer (smtputf8_enable = yes): a key must be
        # UTF-8; so must a result, which byte-wise $n can cut mid-character.
        if not _is_utf8(key):
            log.warning('%s: non-UTF-8 key "%s": malformed UTF-8 or invalid codepoint',
                        self.spec, _printable(key))  # fmt: skip
            return None
        value = self.match(key)
        if value is not None and not _is_utf8(value):
            log.warning('%s: key "%s": non-UTF-8 value "%s": malformed UTF-8 or invalid '
                        "codepoint", self.spec, _printable(key), _printable(value))  # fmt: skip
            raise TableTempFail(f"table {self.spec}: query error")
        return value

    def match(self, key: str) -> str | None:
        found = first_match(self.rules, key.encode("utf-8", "surrogateescape"))
        if found is None:
            return None
        rule, m = found
        if m is None or "$" not in rule.result:
            return mac_literal(rule.result)
        return expand(rule.result, m)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: undecodable bytes of the input
        return False
    return True


def _printable(text: str) -> str:
    """Postfix printable(3) for a UTF-8 session: invalid bytes and ASCII
    control characters become ``?``."""
    raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join("?" if ch == "\ufffd" or ch < " " or ch == "\x7f" else ch for ch in raw)


def mac_literal(result: str) -> str:
    """A replacement without ``$n``: ``$$`` is ``$``."""
    return result.replace("$$", "$")


TABLE_TYPE = PcreTable
