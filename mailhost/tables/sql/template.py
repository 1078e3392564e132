"""Postfix query templates turned into parameterized SQL.

Postfix pastes the (escaped) key into the query text.  mailhost never does: the
template is compiled once into SQL text with placeholders plus a list of the
expansions to bind, so no key can change the statement (DESIGN rule 7).

* ``'%s'`` (a string literal that is exactly one expansion) becomes one
  placeholder; the database sees the same string value Postfix would have
  pasted between the quotes.
* A literal mixing text and expansions (``'%u@%d'``, ``'%%%s'``) becomes a
  concatenation of placeholders and literal pieces (``CONCAT(...)`` for MySQL,
  ``||`` for PostgreSQL and SQLite).
* An expansion outside quotes becomes a placeholder too.
* ``%%`` is a literal ``%`` (doubled again for drivers whose placeholder is ``%s``).

Expansion values follow Postfix's db_common(3) exactly (spec 2.7): the key is
split at its last ``@``; ``%u`` of a key without ``@`` is the whole key; ``%d``
needs a non-empty domain; ``%1``..``%9`` are domain labels counted from the
right.  When a value cannot be formed the lookup is *suppressed*: not found,
and no SQL is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.errors import TableOpenError

#: Expansion letters Postfix accepts in ``query`` (upper case = same as lower).
TOKENS = frozenset("sudSUD123456789")


class Suppressed(Exception):
    """The key cannot fill the template: not found without a query."""


@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str  # "?" or "%s"
    percent: str  # how a literal % is written in SQL text given to the driver
    quotes: str  # characters that open a string literal
    backslash_escapes: bool  # backslash escapes inside string literals (MySQL)
    cast_text: str  # wraps a placeholder used inside a concatenation

    def concat(self, parts: list[str]) -> str:
        if self.name == "mysql":
            return f"CONCAT({', '.join(parts)})"
        return "(" + " || ".join(parts) + ")"


SQLITE = Dialect("sqlite", "?", "%", "'", False, "?")
PGSQL = Dialect("pgsql", "%s", "%%", "'", False, "CAST(%s AS TEXT)")
MYSQL = Dialect("mysql", "%s", "%%", "'\"", True, "%s")
DIALECTS = {"sqlite": SQLITE, "pgsql": PGSQL, "mysql": MYSQL}


@dataclass(frozen=True)
class KeyParts:
    """The pieces of a lookup key that expansions refer to."""

    key: str
    has_at: bool
    local: str
    domain: str

    @classmethod
    def of(cls, key: str) -> KeyParts:
        local, at, domain = key.rpartition("@")
        if not at:
            return cls(key, False, key, "")
        return cls(key, True, local, domain)

    def value(self, token: str) -> str:
        """The value of ``%token`` for this key, or raise Suppressed."""
        token = token.lower()
        if token == "s":
            return self.key
        if token == "u":
            if self.has_at and not self.local:
                raise Suppressed
            return self.local
        if token == "d":
            if not self.has_at or not self.domain:
                raise Suppressed
            return self.domain
        index = int(token)
        if not self.has_at or not self.domain:
            raise Suppressed
        labels = self.domain.split(".")
        if index > len(labels):
            raise Suppressed
        label = labels[-index]
        if not label:
            raise Suppressed
        return label

    def check_labels(self, highest: int) -> None:
        """Postfix requires every label up to the highest index used."""
        if highest == 0:
            return
        if not self.has_at or not self.domain:
            raise Suppressed
        labels = self.domain.split(".")
        if len(labels) < highest or any(not label for label in labels[-highest:]):
            raise Suppressed


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    tokens: tuple[str, ...]  # expansion letter for each placeholder, in order
    highest_label: int

    def bind(self, key: str) -> tuple[object, ...]:
        """The parameters for ``key`` (raises Suppressed)."""
        parts = KeyParts.of(key)
        parts.check_labels(self.highest_label)
        return tuple(parts.value(token) for token in self.tokens)


def _invalid(path: str, template: str) -> TableOpenError:
    return TableOpenError(f"db_common_parse: {path}: Invalid query template: {template}")


def _split_expansions(text: str, path: str, template: str) -> list[tuple[str, str]]:
    """[("text", t) | ("token", letter)] for a piece of template text."""
    pieces: list[tuple[str, str]] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "%":
            buf.append(ch)
            i += 1
            continue
        if i + 1 >= len(text):
            raise _invalid(path, template)
        nxt = text[i + 1]
        if nxt == "%":
            buf.append("%")
        elif nxt in TOKENS:
            if buf:
                pieces.append(("text", "".join(buf)))
                buf = []
            pieces.append(("token", nxt))
        else:
            raise _invalid(path, template)
        i += 2
    if buf:
        pieces.append(("text", "".join(buf)))
    return pieces


def _literal_end(template: str, start: int, dialect: Dialect) -> int:
    """Index of the quote closing the literal opened at ``start`` (or len)."""
    quote = template[start]
    i = start + 1
    while i < len(template):
        ch = template[i]
        if dialect.backslash_escapes and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(template) and template[i + 1] == quote:
                i += 2  # doubled quote inside the literal
                continue
            return i
        i += 1
    return len(template)


def compile_query(template: str, dialect: Dialect, path: str) -> CompiledQuery:
    """Translate a Postfix ``query`` into SQL with placeholders."""
    out: list[str] = []
    tokens: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch in dialect.quotes:
            end = _literal_end(template, i, dialect)
            body = template[i + 1 : end]
            out.append(_literal(ch, body, dialect, tokens, path, template))
            i = end + 1
            continue
        j = i
        while j < len(template) and template[j] not in dialect.quotes:
            j += 1
        for kind, value in _split_expansions(template[i:j], path, template):
            if kind == "token":
                out.append(dialect.placeholder)
                tokens.append(value)
            else:
                out.append(value.replace("%", dialect.percent))
        i = j
    highest = max((int(t) for t in tokens if t.isdigit()), default=0)
    return CompiledQuery("".join(out), tuple(tokens), highest)


def _literal(
    quote: str, body: str, dialect: Dialect, tokens: list[str], path: str, template: str
) -> str:
    pieces = _split_expansions(body, path, template)
    if not any(kind == "token" for kind, _ in pieces):
        return quote + body.replace("%%", "%").replace("%", dialect.percent) + quote
    if len(pieces) == 1:
        tokens.append(pieces[0][1])
        return dialect.placeholder
    parts: list[str] = []
    for kind, value in pieces:
        if kind == "token":
            tokens.append(value)
            parts.append(dialect.cast_text)
        else:
            parts.append(quote + value.replace("%", dialect.percent) + quote)
    return dialect.concat(parts)
