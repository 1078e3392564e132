"""What regexp_table(5) and pcre_table(5) share: the rule list and its walk.

Both tables are an ordered list of ``/pattern/flags result`` rules with
``if /pattern/`` ... ``endif`` blocks (Postfix dict_regexp.c and dict_pcre.c
walk them identically): the first matching rule wins; a failed ``if`` skips
to the rule after its ``endif`` (an ``if`` without ``endif`` skips to the
end).  The dialects differ in pattern syntax, flags and warning texts, which
stay in :mod:`mailhost.tables.regexp` and :mod:`mailhost.tables.pcre`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Rule:
    kind: str  # "match", "if" or "endif"
    regex: re.Pattern[Any] | None = None
    negated: bool = False
    result: str = ""
    lineno: int = 0
    endif: int = -1  # for "if": index of its endif
    anchored: bool = False  # pcre flag A: match at the start of the key only


def split_pattern(text: str) -> tuple[str, str, str] | None:
    """(pattern, flags, rest) of ``/pattern/flags rest``; None when unterminated.

    Any character stands in for ``/``; a backslash escapes the next one."""
    delim = text[0]
    i = 1
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 2
            continue
        if text[i] == delim:
            break
        i += 1
    else:
        return None
    pattern = text[1:i]
    rest = text[i + 1 :]
    m = re.match(r"\S*", rest)
    flags = m.group() if m else ""
    return pattern, flags, rest[len(flags) :].strip(" \t")


def first_match(rules: Sequence[Rule], subject: Any) -> tuple[Rule, re.Match[Any] | None] | None:
    """The first rule that matches ``subject`` (with its match; None for a
    negated rule), following ``if``/``endif``; None when no rule matches."""
    i = 0
    while i < len(rules):
        rule = rules[i]
        if rule.kind != "endif":
            assert rule.regex is not None
            search = rule.regex.match if rule.anchored else rule.regex.search
            m = search(subject)
            if rule.kind == "if":
                if (m is None) != rule.negated:
                    i = rule.endif + 1
                    continue
            elif rule.negated and m is None:
                return rule, None
            elif not rule.negated and m is not None:
                return rule, m
        i += 1
    return None
