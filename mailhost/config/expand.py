"""``$name`` expansion in main.cf values, as Postfix's mac_expand(3) does it.

Supported forms (postconf(5), verified with postconf 3.7.11 -x, spec 1.2):
``$name``, ``${name}``, ``$(name)``, ``$$``; ``${name?value}`` (value when name
is non-empty), ``${name:value}`` (value when name is empty or undefined),
``${name?{v1}:{v2}}``; and the relational form ``${{A} OP {B} ? {x} : {y}}``
with OP one of ``== != < <= > >=``, optionally followed by ``level`` to compare
compatibility levels.  Expansion is recursive; nesting deeper than 100 levels
is an error, as are truncated references and empty macro names.  Undefined
names expand to the empty string with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mailhost.errors import ConfigError
from mailhost.log import logger

log = logger("config")

NESTING_LIMIT = 100
_NAME = re.compile(r"[A-Za-z0-9_]+")
_RELOP = re.compile(r"\s*(==|!=|<=|>=|<|>)(level)?\s*")

Lookup = Callable[[str], str | None]


class MacroError(ConfigError):
    """Postfix prints the detail as a warning, then ``fatal: macro processing error``."""

    def __init__(self, detail: str) -> None:
        super().__init__("macro processing error")
        self.detail = detail


def _fail(detail: str) -> MacroError:
    log.warning("%s", detail)
    return MacroError(detail)


def _balanced(text: str, start: int, open_ch: str, close_ch: str) -> int:
    """Index of the bracket closing the one at ``start``, or -1."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _level(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split("."))
    except ValueError:
        raise _fail(f'malformed compatibility level syntax: "{value}"') from None


def _compare(left: str, op: str, right: str, level: bool) -> bool:
    a: object
    b: object
    if level:
        a, b = _level(left), _level(right)
    elif left.isdigit() and right.isdigit():
        a, b = int(left), int(right)
    else:
        a, b = left, right
    return {
        "==": a == b,
        "!=": a != b,
        "<": a < b,  # type: ignore[operator]
        "<=": a <= b,  # type: ignore[operator]
        ">": a > b,  # type: ignore[operator]
        ">=": a >= b,  # type: ignore[operator]
    }[op]


class Expander:
    """Expands values against a lookup function (explicit settings + defaults)."""

    def __init__(self, lookup: Lookup, filename: str = "main.cf") -> None:
        self.lookup = lookup
        self.filename = filename

    def expand(self, text: str) -> str:
        return self._expand(text, 0, "")

    def _value(self, name: str, depth: int) -> str:
        if depth >= NESTING_LIMIT:
            raise _fail(f'unreasonable macro call nesting: "{name}"')
        value = self.lookup(name)
        if value is None:
            log.warning("%s: undefined parameter: %s", self.filename, name)
            return ""
        return self._expand(value, depth + 1, name)

    def _expand(self, text: str, depth: int, owner: str) -> str:
        if depth >= NESTING_LIMIT:
            raise _fail(f'unreasonable macro call nesting: "{owner}"')
        if "$" not in text:
            return text
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if ch != "$":
                j = text.find("$", i)
                j = n if j < 0 else j
                out.append(text[i:j])
                i = j
                continue
            if i + 1 < n and text[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if i + 1 < n and text[i + 1] in "{(":
                open_ch = text[i + 1]
                close = _balanced(text, i + 1, open_ch, "}" if open_ch == "{" else ")")
                if close < 0:
                    raise _fail(f'truncated macro reference: "{text[i:]}"')
                out.append(self._braced(text[i + 2 : close], depth, text[i:]))
                i = close + 1
                continue
            m = _NAME.match(text, i + 1)
            if not m:
                raise _fail(f'empty macro name: "{text[i:]}"')
            out.append(self._value(m.group(), depth))
            i = m.end()
        return "".join(out)

    def _braced(self, inner: str, depth: int, whole: str) -> str:
        if inner.startswith("{"):
            return self._relational(inner, depth, whole)
        m = _NAME.match(inner)
        if not m:
            raise _fail(f'empty macro name: "{whole}"')
        name, rest = m.group(), inner[m.end() :]
        if not rest:
            return self._value(name, depth)
        op, payload = rest[0], rest[1:]
        if op not in "?:":
            raise _fail(f'unknown operator in macro: "{whole}"')
        value = self.lookup(name)
        if value is None:
            log.warning("%s: undefined parameter: %s", self.filename, name)
            value = ""
        else:
            value = self._expand(value, depth + 1, name)
        when_set, when_unset = self._alternatives(payload, op, whole)
        chosen = when_set if value else when_unset
        return self._expand(chosen, depth + 1, name) if chosen else ""

    @staticmethod
    def _alternatives(payload: str, op: str, whole: str) -> tuple[str, str]:
        """Split the text after ``?``/``:`` into (if-set, if-unset) texts."""
        stripped = payload.lstrip()
        if op == "?" and stripped.startswith("{"):
            end = _balanced(stripped, 0, "{", "}")
            if end < 0:
                raise _fail(f'truncated macro reference: "{whole}"')
            first, rest = stripped[1:end], stripped[end + 1 :].strip()
            if not rest:
                return first, ""
            if not rest.startswith(":"):
                raise _fail(f'"{whole}": garbage after "{{{first}}}"')
            second = rest[1:].strip()
            if second.startswith("{") and second.endswith("}"):
                second = second[1:-1]
            return first, second
        if stripped.startswith("{") and stripped.rstrip().endswith("}"):
            payload = stripped.rstrip()[1:-1]
        return (payload, "") if op == "?" else ("", payload)

    def _operand(self, text: str, pos: int, whole: str) -> tuple[str, int]:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text) or text[pos] != "{":
            raise _fail(f'"{whole}": expected "{{" in relational expression')
        end = _balanced(text, pos, "{", "}")
        if end < 0:
            raise _fail(f'truncated macro reference: "{whole}"')
        return text[pos + 1 : end], end + 1

    def _relational(self, inner: str, depth: int, whole: str) -> str:
        left, pos = self._operand(inner, 0, whole)
        m = _RELOP.match(inner, pos)
        if not m:
            raise _fail(f'"{whole}": unknown relational operator')
        right, pos = self._operand(inner, m.end(), whole)
        rest = inner[pos:].lstrip()
        if not rest.startswith("?"):
            raise _fail(f'"{whole}": expected "?" after relational expression')
        when_true, when_false = self._alternatives(rest[1:], "?", whole)
        result = _compare(
            self._expand(left, depth + 1, ""),
            m.group(1),
            self._expand(right, depth + 1, ""),
            bool(m.group(2)),
        )
        chosen = when_true if result else when_false
        return self._expand(chosen, depth + 1, "") if chosen else ""


def referenced_names(text: str) -> set[str]:
    """Parameter names a value refers to (for "unused parameter" warnings)."""
    names: set[str] = set()
    for m in re.finditer(r"\$(?:([A-Za-z0-9_]+)|[{(]([A-Za-z0-9_]+))", text):
        names.add(m.group(1) or m.group(2))
    return names
