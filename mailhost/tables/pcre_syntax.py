"""PCRE pattern syntax → Python ``re`` syntax, for :mod:`mailhost.tables.pcre`.

Postfix 3.7 (Debian: libpcre2-8) compiles pcre_table(5) patterns without
``PCRE2_UTF``: a pattern and a key are byte strings, ``.`` is one byte, ``\\w``
``\\d`` ``\\s`` and case-insensitivity are ASCII only (PCRE2's built-in "C"
tables).  Python's ``re`` on ``bytes`` behaves the same way, so patterns are
translated to a ``bytes`` pattern: the text is handled as Latin-1 (one
character per byte) and every literal is written as ``\\xHH``.

The translator reads the whole PCRE grammar it accepts, so that it can

* report the malformed patterns Postfix reports with PCRE2's own text and
  offset (:class:`PcreError`, e.g. ``missing closing parenthesis``);
* rewrite what Python spells differently (``(?<name>``, ``\\z``, ``\\Z``,
  ``\\h``, ``\\v``, ``\\xH``, ``\\e``, POSIX classes, inline ``(?i)`` mid-pattern,
  the ``x``, ``E`` and ``U`` options);
* refuse (:class:`Unsupported`) every construct Python cannot match exactly —
  never a silent difference.  docs/tables.md lists them.

References: pcre2pattern(3) of PCRE2 10.42, pcre2syntax(3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class PcreError(Exception):
    """A pattern PCRE2 itself rejects: Postfix's ``error in regex at offset N: TEXT``."""

    def __init__(self, offset: int, text: str) -> None:
        super().__init__(f"error in regex at offset {offset}: {text}")


class Unsupported(Exception):
    """A valid PCRE construct that Python ``re`` cannot match exactly."""

    def __init__(self, construct: str) -> None:
        super().__init__(construct)
        self.construct = construct


_SPACE = " \t\n\x0b\x0c\r"  # the "C" tables' white space
# PCRE2_EXTENDED also skips NEL, even as the second byte of a UTF-8 character
# ("Å" is C3 85): pcre2_compile.c, checked with postmap 3.7.11.
_EXTENDED_SPACE = _SPACE + "\x85"
_VSPACE = "\n\x0b\x0c\r\x85"  # \v in 8-bit non-UTF mode
_HSPACE = "\t \xa0"  # \h in 8-bit non-UTF mode
_POSIX = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": _SPACE, "blank": " \t", "punct": "!-/:-@[-`{-~", "print": " -~", "graph": "!-~",
    "cntrl": "\x00-\x1f\x7f", "xdigit": "0-9A-Fa-f", "word": "a-zA-Z0-9_", "ascii": "\x00-\x7f",
}  # fmt: skip
_NEGATED_POSIX = {"digit": r"\D", "space": r"\S", "word": r"\W"}
_SIMPLE_ESCAPES = {"a": 7, "e": 0x1B, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09}
#: escapes PCRE2 itself rejects as "unrecognized character follows \"
_UNKNOWN_ESCAPES = set("ijmqyIJMOTY")
#: check_posix_syntax() of pcre2_compile.c: "[:" ... ":]" with no "]" between
_POSIX_SYNTAX = re.compile(r"\[([:.=])(?:\\[\]\\]|(?!\[\1)[^\]])*?\1\]", re.DOTALL)
_QUANTIFIER = re.compile(r"\{(\d+)(,(\d*))?\}")
_NAME_LIMIT = 32
_QUANTIFIER_LIMIT = 65535


def _byte(value: int) -> str:
    return f"\\x{value:02x}"


def _literal(text: str) -> str:
    """Python ``re`` text matching the bytes of ``text`` (Latin-1) literally."""
    return "".join(ch if ch.isascii() and ch.isalnum() else _byte(ord(ch)) for ch in text)


def _ranges(spec: str) -> str:
    """A class body like ``a-z0-9`` with every character written as \\xHH."""
    return "".join("-" if ch == "-" and 0 < i < len(spec) - 1 else _byte(ord(ch))
                   for i, ch in enumerate(spec))  # fmt: skip


@dataclass
class _Frame:
    """One open group: its options and the inline-option scopes opened in it."""

    extended: bool
    ungreedy: bool
    multiline: bool
    capture: int = 0  # group number, 0 when not capturing
    assertion: bool = False
    start: int = 0  # index in the output where the group's text begins
    consumed: bool = False  # whether anything was matched before the group opened
    scopes: list[str] = field(default_factory=list)  # "(?flags:" opened by (?flags)


@dataclass
class Translation:
    pattern: str
    groups: int


class _Translator:
    def __init__(
        self, pattern: str, *, extended: bool, ungreedy: bool, multiline: bool, dollar_endonly: bool
    ) -> None:
        self.p = pattern
        self.i = 0
        self.out: list[str] = []
        self.frames = [_Frame(extended, ungreedy, multiline)]
        self.dollar_endonly = dollar_endonly
        self.groups = 0
        self.closed: set[int] = set()
        self.names: set[str] = set()
        self.backrefs: list[tuple[int, int]] = []  # (group, offset)
        self.forward: list[tuple[int, int]] = []  # references to groups not yet closed
        # what a quantifier would apply to: "item", "assertion", "quantifier" or ""
        self.last = ""
        self.group_start = 0  # where the last closed group begins in the output
        # for the start-of-match refusal (see _lookahead_first)
        self.consumed = False
        self.startline = pattern.startswith("^") and not multiline

    # the outer loop ---------------------------------------------------------

    def run(self) -> Translation:
        p = self.p
        while self.i < len(p):
            frame = self.frames[-1]
            ch = p[self.i]
            if frame.extended and ch in _EXTENDED_SPACE:
                self.i += 1
            elif frame.extended and ch == "#":
                end = p.find("\n", self.i)
                self.i = len(p) if end < 0 else end + 1
            elif ch == "\\":
                self._escape()
            elif ch == "[":
                self._class()
            elif ch == "(":
                self._open()
            elif ch == ")":
                self._close()
            elif ch == "|":
                self._emit_alternative()
            elif ch in "*+?{":
                self._quantifier()
            elif ch == "^":
                # multi-line: PCRE2's ^ is not true after a newline that ends
                # the subject, Python's is.
                circumflex = r"(?:\A|(?<=\n)(?!\Z))" if frame.multiline else "^"
                self._emit(circumflex, "assertion", 1)
            elif ch == "$":
                endonly = self.dollar_endonly and not frame.multiline
                self._emit(r"\Z" if endonly else "$", "assertion", 1)
            elif ch == ".":
                self._emit(".", "item", 1)
            else:
                self._emit(_literal(ch), "item", 1)
        if len(self.frames) > 1:
            raise PcreError(len(p), "missing closing parenthesis")
        self.out.append(")" * len(self.frames[0].scopes))
        for group, offset in self.backrefs:
            if group > self.groups:
                raise PcreError(offset, "reference to non-existent subpattern")
        for group, _ in self.forward:
            raise Unsupported(f"\\{group} (reference to a group not closed before it)")
        return Translation("".join(self.out), self.groups)

    def _emit(self, text: str, last: str, advance: int) -> None:
        self.out.append(text)
        self.last = last
        self.i += advance
        self.consumed |= last == "item"

    # escapes ----------------------------------------------------------------

    def _escape(self) -> None:
        p, i = self.p, self.i
        if i + 1 >= len(p):
            raise PcreError(len(p), "\\ at end of pattern")
        ch = p[i + 1]
        if ch in "dDwWsS":
            self._emit("\\" + ch, "item", 2)
        elif ch in "bBA":
            self._emit("\\" + ch, "assertion", 2)
        elif ch == "z":
            self._emit(r"\Z", "assertion", 2)
        elif ch == "Z":
            self._emit(r"(?=\n?\Z)", "assertion", 2)
        elif ch in "vhVH":
            chars = _VSPACE if ch in "vV" else _HSPACE
            neg = "^" if ch.isupper() else ""
            self._emit(f"[{neg}{_literal(chars)}]", "item", 2)
        elif ch in "123456789":
            digits = re.match(r"\d+", p[i + 1 :])
            assert digits is not None
            if len(digits.group()) > 1:
                raise Unsupported(f"\\{digits.group()} (multi-digit back reference or octal)")
            group = int(ch)
            if group not in self.closed:
                # PCRE2 allows a reference to a later group or one still open
                # (it matches within a repetition); Python does not.
                self.forward.append((group, i + 1))
            self.backrefs.append((group, i + 1))
            self._emit(f"(?:\\{group})", "item", 2)
        elif ch == "k":
            m = re.match(r"k(?:<([^>]*)>|'([^']*)'|\{([^}]*)\})", p[i + 1 :])
            name = next((g for g in m.groups() if g is not None), "") if m else ""
            if not m or name not in self.names:
                raise Unsupported(p[i : i + 2 + (len(m.group()) - 1 if m else 0)])
            self._emit(f"(?P={name})", "item", 1 + len(m.group()))
        else:
            value, length = self._char_escape(i, in_class=False)
            self._emit(_byte(value), "item", length)

    def _char_escape(self, i: int, *, in_class: bool) -> tuple[int, int]:
        """The byte of the single-character escape at ``i`` and its length."""
        p = self.p
        ch = p[i + 1]
        if ch in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[ch], 2
        if ch == "b" and in_class:
            return 8, 2
        if ch == "0" or (in_class and ch in "1234567"):
            m = re.match(r"[0-7]{1,3}", p[i + 1 :])
            assert m is not None
            if int(m.group(), 8) > 0xFF:
                raise Unsupported(f"\\{m.group()} (octal value above \\377)")
            return int(m.group(), 8), 1 + len(m.group())
        if ch == "x":
            if p.startswith("{", i + 2):
                m = re.match(r"\{([0-9A-Fa-f]+)\}", p[i + 2 :])
                if not m or int(m.group(1), 16) > 0xFF:
                    raise Unsupported(p[i : i + 2 + (len(m.group()) if m else 1)])
                return int(m.group(1), 16), 2 + len(m.group())
            m = re.match(r"[0-9A-Fa-f]{0,2}", p[i + 2 :])
            assert m is not None
            return int(m.group() or "0", 16), 2 + len(m.group())
        if ch == "c" and i + 2 < len(p) and " " <= p[i + 2] <= "~":
            return ord(p[i + 2].upper()) ^ 0x40, 3
        if ch in _UNKNOWN_ESCAPES:
            raise PcreError(i + 1, "unrecognized character follows \\")
        if ch.isascii() and ch.isalnum():
            raise Unsupported("\\" + ch)
        return ord(ch), 2

    # character classes -------------------------------------------------------

    def _class(self) -> None:
        p, start = self.p, self.i
        outside = _POSIX_SYNTAX.match(p, start)
        if outside and outside.group(1) == ":":
            raise PcreError(start, "POSIX named classes are supported only within a class")
        if outside:
            raise PcreError(start, "POSIX collating elements are not supported")
        i = start + 1
        body: list[str] = []
        if p.startswith("^", i):
            body.append("^")
            i += 1
        first = True
        while True:
            if i >= len(p):
                raise PcreError(len(p), "missing terminating ] for character class")
            ch = p[i]
            if ch == "]" and not first:
                break
            first = False
            item, value, i_next = self._class_item(i)
            if value is not None and p.startswith("-", i_next) and not p.startswith("-]", i_next):
                _, hi, after = self._class_item(i_next + 1)
                if hi is None:
                    posix = p.startswith("[", i_next + 1)  # PCRE2 stops on its ":"
                    offset = i_next + 2 if posix else after
                    raise PcreError(offset, "invalid range in character class")
                if hi < value:
                    raise PcreError(after - 1, "range out of order in character class")
                body.append(f"{_byte(value)}-{_byte(hi)}")
                i = after
                continue
            if value is None and p.startswith("-", i_next) and not p.startswith("-]", i_next):
                if i_next + 1 >= len(p):
                    raise PcreError(len(p), "missing terminating ] for character class")
                raise PcreError(i_next, "invalid range in character class")
            body.append(item)
            i = i_next
        self.out.append("[" + "".join(body) + "]")
        self.last = "item"
        self.consumed = True
        self.i = i + 1

    def _class_item(self, i: int) -> tuple[str, int | None, int]:
        """(Python text, byte value or None for a set, index after) of one item."""
        p = self.p
        if i >= len(p):
            raise PcreError(len(p), "missing terminating ] for character class")
        m = _POSIX_SYNTAX.match(p, i)
        if m and m.group(1) != ":":
            raise PcreError(i, "POSIX collating elements are not supported")
        if m:
            m = re.match(r"\[:(\^?)(.*):\]", m.group(), re.DOTALL)
            assert m is not None
            negated, name = m.group(1), m.group(2)
            if name not in _POSIX:
                raise PcreError(i + 2, "unknown POSIX class name")
            if negated:
                if name not in _NEGATED_POSIX:
                    raise Unsupported(m.group() + " (negated POSIX class)")
                return _NEGATED_POSIX[name], None, i + len(m.group())
            return _ranges(_POSIX[name]), None, i + len(m.group())
        if p[i] != "\\":
            return _byte(ord(p[i])), ord(p[i]), i + 1
        if i + 1 >= len(p):
            raise PcreError(len(p), "\\ at end of pattern")
        ch = p[i + 1]
        if ch in "dDwWsS":
            return "\\" + ch, None, i + 2
        if ch in "vh":
            return _literal(_VSPACE if ch == "v" else _HSPACE), None, i + 2
        value, length = self._char_escape(i, in_class=True)
        return _byte(value), value, i + length

    # groups -------------------------------------------------------------------

    def _open(self) -> None:
        p, i = self.p, self.i
        frame = self.frames[-1]
        if p.startswith("(*", i):
            raise Unsupported(
                p[i : p.find(")", i) + 1 or len(p)] + " (backtracking verb or option)"
            )
        new = _Frame(frame.extended, frame.ungreedy, frame.multiline)
        if not p.startswith("(?", i):
            self.groups += 1
            new.capture = self.groups
            self._push(new, "(", 1)
            return
        rest = p[i + 2 :]
        if rest.startswith(":") or rest.startswith(">"):
            self._push(new, "(?" + rest[0], 3)
        elif rest[:1] in ("=", "!") or rest[:2] in ("<=", "<!"):
            if rest[:1] == "=":
                self._lookahead_first(rest)
            new.assertion = True
            length = 3 if rest[:1] in "=!" else 4
            self._push(new, p[i : i + length], length)
        elif rest.startswith("#"):
            end = p.find(")", i)
            if end < 0:
                raise PcreError(len(p), "missing ) after (?# comment")
            self.i = end + 1
        elif re.match(r"P<|'|<(?![=!*])", rest):
            self._named_group(new)
        elif rest.startswith("P="):
            m = re.match(r"P=([^)]*)\)", rest)
            if not m or m.group(1) not in self.names:
                raise Unsupported(p[i : i + 3 + (len(m.group()) if m else 0)])
            self._emit(f"(?P={m.group(1)})", "item", 2 + len(m.group()))
        elif rest.startswith("P") and rest[1:2] != ">":
            raise PcreError(i + 3, "unrecognized character after (?P")
        else:
            self._options(new)

    def _named_group(self, new: _Frame) -> None:
        """``(?<name>``, ``(?'name'``, ``(?P<name>`` with PCRE2's name errors."""
        p, i = self.p, self.i
        start = i + (4 if p.startswith("(?P", i) else 3)
        close = "'" if p[start - 1] == "'" else ">"
        m = re.compile(r"[A-Za-z0-9_]*").match(p, start)
        assert m is not None
        name, end = m.group(), m.end()
        if not name:
            raise PcreError(start, "subpattern name expected")
        if name[0].isdigit():
            raise PcreError(start, "subpattern name must start with a non-digit")
        if len(name) > _NAME_LIMIT:
            raise PcreError(end, "subpattern name is too long (maximum 32 code units)")
        if not p.startswith(close, end):
            raise PcreError(end, "syntax error in subpattern name (missing terminator?)")
        if name in self.names:
            raise PcreError(end + 1, "two named subpatterns have the same name "
                            "(PCRE2_DUPNAMES not set)")  # fmt: skip
        self.names.add(name)
        self.groups += 1
        new.capture = self.groups
        self._push(new, f"(?P<{name}>", end + 1 - i)

    def _options(self, new: _Frame) -> None:
        """``(?imsxU-imsxU)`` and ``(?imsxU-imsxU:...)``."""
        p, i = self.p, self.i
        if re.match(r"[R+&C(|0-9*]|-\d|P>|<\*", p[i + 2 :]):
            end = p.find(")", i)
            raise Unsupported(p[i : end + 1 if end > 0 else len(p)] + " (recursion, subroutine "
                              "call, conditional, callout or branch reset)")  # fmt: skip
        j, on, python = i + 2, True, {True: "", False: ""}
        while j < len(p) and p[j] not in ":)":
            ch = p[j]
            if ch == "-" and on:
                on = False
            elif ch in "nJ^" or p.startswith("xx", j):
                raise Unsupported(f"(?{ch}) option")
            elif ch in "ims":
                python[on] += ch
                if ch == "m":
                    new.multiline = on
            elif ch == "x":
                new.extended = on
            elif ch == "U":
                new.ungreedy = on
            else:
                raise PcreError(j, "unrecognized character after (? or (?-")
            j += 1
        if j >= len(p):
            raise PcreError(len(p), "missing closing parenthesis")
        flags = python[True] + (f"-{python[False]}" if python[False] else "")
        if p[j] == ":":
            self._push(new, f"(?{flags}:", j + 1 - i)
            return
        # (?flags): applies to the rest of the enclosing group, its later
        # alternatives included — a scoped group re-opened after each "|".
        frame = self.frames[-1]
        frame.extended, frame.ungreedy, frame.multiline = new.extended, new.ungreedy, new.multiline
        if flags:
            frame.scopes.append(f"(?{flags}:")
            self.out.append(f"(?{flags}:")
        self.i = j + 1
        self.last = ""

    def _lookahead_first(self, rest: str) -> None:
        """PCRE2 10.42 (Debian 12) takes a "first code unit" from a lookahead
        met before anything is matched, and then searches the "required code
        unit" one byte too late: ``(?=a)x?a`` does not match ``a``.  Python
        answers correctly, so such patterns are refused rather than answered
        differently.  A lookahead starting with ``.`` gives no first code
        unit; neither does a pattern starting with ``^`` (checked with
        postmap 3.7.11)."""
        if not (self.consumed or self.startline or rest[1:2] == "."):
            raise Unsupported(
                f"(?={rest[1:6]}... before the first matched character (PCRE2 10.42's "
                "start-of-match optimisation answers differently)"
            )

    def _push(self, frame: _Frame, text: str, advance: int) -> None:
        frame.start = len(self.out)
        frame.consumed = self.consumed
        self.frames.append(frame)
        self._emit(text, "", advance)

    def _close(self) -> None:
        if len(self.frames) == 1:
            raise PcreError(self.i, "unmatched closing parenthesis")
        frame = self.frames.pop()
        self.out.append(")" * len(frame.scopes))
        if frame.capture:
            self.closed.add(frame.capture)
        self.group_start = frame.start
        consumed = self.consumed
        self._emit(")", "lookaround" if frame.assertion else "item", 1)
        self.consumed = consumed

    def _emit_alternative(self) -> None:
        scopes = self.frames[-1].scopes
        self.consumed = self.frames[-1].consumed
        self.startline = False
        self._emit(")" * len(scopes) + "|" + "".join(scopes), "", 1)

    # quantifiers ----------------------------------------------------------------

    def _quantifier(self) -> None:
        p, i = self.p, self.i
        if p[i] == "{":
            m = _QUANTIFIER.match(p, i)
            if not m:
                self._emit(_byte(ord("{")), "item", 1)
                return
            low, high = int(m.group(1)), m.group(3)
            end = m.end() - 1
            if low > _QUANTIFIER_LIMIT or (high and int(high) > _QUANTIFIER_LIMIT):
                raise PcreError(end, "number too big in {} quantifier")
            if high and int(high) < low:
                raise PcreError(end, "numbers out of order in {} quantifier")
            text = m.group()
            most = low if m.group(2) is None else int(high) if high else None
        else:
            end, text = i, p[i]
            low, most = (1, None) if text == "+" else (0, 1 if text == "?" else None)
        if self.last in ("", "quantifier", "assertion"):
            raise PcreError(end, "quantifier does not follow a repeatable item")
        if self.last == "lookaround":
            self._quantified_lookaround(low, most, end)
            return
        j = self._skip_comments(end + 1)  # PCRE2 reads "a*(?#c)?" as "a*?"
        suffix = ""
        if p.startswith("?", j) or p.startswith("+", j):
            suffix = p[j]
            j += 1
        else:
            j = end + 1
        if self.frames[-1].ungreedy and suffix != "+":
            suffix = "" if suffix == "?" else "?"
        self.out.append(text + suffix)
        self.last = "quantifier"
        self.i = j

    def _skip_comments(self, j: int) -> int:
        """The index after any ``(?#...)`` comments (and, in extended mode,
        white space and ``#`` comments) at ``j``."""
        p, extended = self.p, self.frames[-1].extended
        while j < len(p):
            if p.startswith("(?#", j) and p.find(")", j) > 0:
                j = p.find(")", j) + 1
            elif extended and p[j] in _EXTENDED_SPACE:
                j += 1
            elif extended and p[j] == "#":
                end = p.find("\n", j)
                j = len(p) if end < 0 else end + 1
            else:
                break
        return j

    def _quantified_lookaround(self, low: int, most: int | None, end: int) -> None:
        """PCRE2 obeys a repeated assertion once, an optional one maybe, and
        one repeated {0} times never (pcre2pattern(3), "Assertions")."""
        group = self.out[self.group_start :]
        if most == 0:
            del self.out[self.group_start :]
        elif low == 0:
            self.out[self.group_start :] = ["(?:", *group, ")?"]
        self.last = "quantifier"
        self.i = end + 1 + (self.p[end + 1 : end + 2] in ("?", "+"))


def translate(
    pattern: str,
    *,
    extended: bool = False,
    ungreedy: bool = False,
    multiline: bool = False,
    dollar_endonly: bool = False,
) -> Translation:
    """Translate a PCRE pattern (bytes as Latin-1 text) to Python ``re`` text
    for a ``bytes`` pattern; raises :class:`PcreError` or :class:`Unsupported`."""
    return _Translator(
        pattern,
        extended=extended,
        ungreedy=ungreedy,
        multiline=multiline,
        dollar_endonly=dollar_endonly,
    ).run()
