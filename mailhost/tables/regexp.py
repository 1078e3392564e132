"""``regexp:/file`` — Postfix regexp_table(5): POSIX extended regular expressions.

Each logical line is ``/pattern/flags result``, ``!/pattern/flags result``,
``if /pattern/flags`` ... ``endif`` (nestable) — any non-alphanumeric character
may stand in for ``/``.  Flags toggle: ``i`` case sensitivity (patterns are
case-insensitive by default), ``m`` multi-line mode (default off), ``x``
extended syntax (default on; off means POSIX basic syntax).  The first matching
rule wins; ``$1``..``$9``, ``${n}``, ``$(n)`` insert groups and ``$$`` is a ``$``.
Keys are matched whole and as given (no folding, no partial address keys).
Warnings match postmap 3.7.11's texts (spec 2.6).
"""

from __future__ import annotations

import re
from typing import ClassVar

from mailhost.config.maincf import logical_lines
from mailhost.log import logger
from mailhost.tables.base import Table
from mailhost.tables.patterns import Rule, first_match, split_pattern
from mailhost.tables.registry import OpenContext
from mailhost.tables.source import read_source

log = logger("tables")

_POSIX_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": r" \t\n\r\f\v", "blank": r" \t", "punct": r"!-/:-@\[-`{-~", "print": r" -~",
    "graph": r"!-~", "cntrl": r"\x00-\x1f\x7f", "xdigit": "0-9A-Fa-f",
}  # fmt: skip
_REFERENCE = re.compile(r"\$(?:\$|(\d)|\{(\d)\}|\((\d)\))")


def _translate_bracket(pattern: str, start: int) -> tuple[str, int]:
    """Translate the POSIX bracket expression at ``start`` (a ``[``); returns the
    Python text and the index after its closing ``]``."""
    i = start + 1
    out = ["["]
    if i < len(pattern) and pattern[i] == "^":
        out.append("^")
        i += 1
    first = True
    while i < len(pattern):
        ch = pattern[i]
        if ch == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        first = False
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            cls = pattern[i + 2 : end] if end > 0 else ""
            if cls not in _POSIX_CLASSES:
                raise re.error(f"invalid character class {cls!r}")
            out.append(_POSIX_CLASSES[cls])
            i = end + 2
            continue
        # In a POSIX bracket a backslash is literal and so is a leading ']'.
        out.append("\\" + ch if ch in "\\[]" else ch)
        i += 1
    raise re.error("brackets ([ ]) not balanced")


def translate(pattern: str, extended: bool = True) -> str:
    """POSIX regular expression → Python ``re`` syntax."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "[":
            text, i = _translate_bracket(pattern, i)
            out.append(text)
            continue
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if not extended and nxt in "(){}|+?":
                out.append(nxt)  # basic syntax: \( is a group
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if not extended and ch in "(){}|+?":
            out.append("\\" + ch)  # basic syntax: ( is a literal
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def parse_rules(text: str, filename: str) -> list[Rule]:
    where = f"regexp map {filename}"
    rules: list[Rule] = []
    open_ifs: list[int] = []
    for line in logical_lines(text.splitlines(), filename):
        body = line.text
        keyword = body.split(None, 1)[0].lower() if body.split() else ""
        if keyword == "endif":
            if not open_ifs:
                log.warning("%s, line %d: ignoring ENDIF without matching IF", where, line.lineno)
                continue
            rules[open_ifs.pop()].endif = len(rules)
            rules.append(Rule("endif", lineno=line.lineno))
            continue
        is_if = keyword == "if" and len(body) > 2 and body[2] in " \t"
        if is_if:
            body = body[2:].lstrip()
        negated = body.startswith("!")
        if negated:
            body = body[1:].lstrip()
        if not body or body[0].isalnum():
            log.warning("%s, line %d: no regexp delimiter: skipping this rule", where, line.lineno)
            continue
        parts = split_pattern(body)
        if parts is None:
            log.warning("%s, line %d: no closing regexp delimiter \"%s\": skipping this rule",
                        where, line.lineno, body[0])  # fmt: skip
            continue
        pattern, flags, result = parts
        rule = _compile(where, line.lineno, pattern, flags, result, negated, is_if)
        if rule is None:
            continue
        if is_if:
            open_ifs.append(len(rules))
        rules.append(rule)
    for index in open_ifs:
        log.warning("%s, line %d: IF has no matching ENDIF", where, rules[index].lineno)
        rules[index].endif = len(rules)
    return rules


def _compile(
    where: str, lineno: int, pattern: str, flags: str, result: str, negated: bool, is_if: bool
) -> Rule | None:
    icase, multiline, extended = True, False, True
    for flag in flags:
        if flag == "i":
            icase = not icase
        elif flag == "m":
            multiline = not multiline
        elif flag == "x":
            extended = not extended
        else:
            log.warning('%s, line %d: unknown regexp option "%s": skipping this rule',
                        where, lineno, flag)  # fmt: skip
            return None
    try:
        regex = re.compile(
            translate(pattern, extended),
            # POSIX without REG_NEWLINE (no "m" flag): "." matches a newline,
            # as in a folded header that header_checks sees as one string.
            (re.IGNORECASE if icase else 0) | (re.MULTILINE if multiline else re.DOTALL),
        )
    except re.error as exc:
        log.warning("%s, line %d: %s", where, lineno, exc)
        return None
    if is_if:
        return Rule("if", regex, negated, lineno=lineno)
    if not result:
        log.warning("%s, line %d: no replacement text: using empty string", where, lineno)
    for m in _REFERENCE.finditer(result):
        index = m.group(1) or m.group(2) or m.group(3)
        if index is None:
            continue
        if negated:
            log.warning('%s, line %d: $number in negative rule "%s": skipping this rule',
                        where, lineno, result)  # fmt: skip
            return None
        if int(index) > regex.groups:
            log.warning('%s, line %d: out of range replacement index "%s": skipping this rule',
                        where, lineno, index)  # fmt: skip
            return None
    return Rule("match", regex, negated, result, lineno)


def substitute(result: str, match: re.Match[str] | None) -> str:
    def replace(m: re.Match[str]) -> str:
        index = m.group(1) or m.group(2) or m.group(3)
        if index is None:
            return "$"
        return (match.group(int(index)) or "") if match is not None else ""

    return _REFERENCE.sub(replace, result)


class RegexpTable(Table):
    type_name: ClassVar[str] = "regexp"
    fixed: ClassVar[bool] = False

    def __init__(self, name: str, rules: list[Rule]) -> None:
        super().__init__(name, fold=False)
        self.rules = rules

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        text = read_source(name)
        return cls(name, parse_rules(text, name))

    async def _lookup(self, key: str) -> str | None:
        return self.match(key)

    def match(self, key: str) -> str | None:
        found = first_match(self.rules, key)
        if found is None:
            return None
        rule, m = found
        return rule.result if m is None else substitute(rule.result, m)


TABLE_TYPE = RegexpTable
