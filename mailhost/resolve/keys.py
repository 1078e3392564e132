"""The address search of every ``*_maps`` lookup of an address (spec 3.3).

Postfix mail_addr_find(3), in our words.  For ``user+ext@domain``:

1. ``user+ext@domain`` in every table;
2. ``user@domain`` in fixed-string tables, when an extension was split off;
3. when the domain is ``$myorigin`` or local (mydestination, interface
   literals): ``user+ext`` then ``user``, fixed-string tables only;
4. ``@domain``, fixed-string tables only.

Each step asks every table before the next step; a table error ends the search
(TableTempFail).  Address keys are tried in external (quoted) form first and
then, if that differs, in internal form (Postfix 3.5+ "external-first").  A hit
on a key without the extension reports the extension, so map users can put it
back (propagate_unmatched_extensions).  The result value is then turned into
addresses by :func:`map_address` (Postfix mail_addr_map(3)).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from mailhost.address import (
    external_form,
    insert_extension,
    internal_form,
    join_address,
    normalize_domain,
    quote_local,
    split_address,
    split_extension,
)
from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.resolve.classify import DomainClasses, is_local_domain
from mailhost.resolve.trace import Trace
from mailhost.tables.maps import Maps, MapsProbe

log = logger("cleanup")


@dataclass(frozen=True)
class SearchPolicy:
    """What the key sequence depends on besides the address."""

    classes: DomainClasses
    #: recipient_delimiter (a set of characters; empty = no extensions).
    delimiters: str = ""
    owner_request_special: bool = True
    double_bounce_sender: str = "double-bounce"
    #: append_at_myorigin: bare results become ``name@$myorigin``.
    append_at_myorigin: bool = True

    @property
    def myorigin(self) -> str:
        return self.classes.myorigin


@dataclass(frozen=True)
class Hit:
    value: str
    key: str
    #: The extension split off to find the hit (None for full-key and @domain hits).
    extension: str | None


async def _probe(maps: Maps, key: str, partial: bool, trace: Trace | None) -> str | None:
    probes: list[MapsProbe] | None = [] if trace is not None else None
    try:
        return await maps.lookup(key, partial=partial, probes=probes)
    finally:
        if trace is not None and probes is not None:
            trace.add_probes(maps.parameter, probes)


async def _find_form(
    maps: Maps, key: str, partial: bool, with_domain: bool, trace: Trace | None
) -> tuple[str, str] | None:
    """One key, external form first, then internal form when it differs."""
    external = external_form(key) if with_domain else quote_local(key)
    value = await _probe(maps, external, partial, trace)
    if value is not None:
        return value, external
    if external != key:
        value = await _probe(maps, key, partial, trace)
        if value is not None:
            return value, key
    return None


#: Remembered searches per Maps at most (the memo is emptied when full).
MEMO_SIZE = 10_000


async def find(
    maps: Maps, address: str, policy: SearchPolicy, trace: Trace | None = None
) -> Hit | None:
    """Search ``maps`` for ``address`` (internal form); raises TableTempFail.

    A message looks the same address up in the same maps several times (at
    RCPT, at alias expansion, at delivery); when every table of ``maps``
    answers from memory anyway (``Maps.memo_ttl``), the whole search result
    is reused for that long, sparing the key sequence's probes.  A failed
    search is never remembered; a traced one is always done in full."""
    if not maps.tables:  # (not Maps.__bool__: a Python call)
        return None
    if trace is not None or maps.memo_ttl <= 0:
        return await _search(maps, address, policy, trace)
    key = (address, id(policy))
    now = time.monotonic()
    entry = maps.memo.get(key)
    if entry is not None and entry[0] > now and entry[1] is policy:
        return entry[2]  # type: ignore[return-value]
    hit = await _search(maps, address, policy, None)
    if len(maps.memo) >= MEMO_SIZE:
        maps.memo.clear()
    maps.memo[key] = (now + maps.memo_ttl, policy, hit)
    return hit


async def _search(
    maps: Maps, address: str, policy: SearchPolicy, trace: Trace | None
) -> Hit | None:
    local, domain = split_address(address)
    if domain:
        domain = normalize_domain(domain)
    base, extension = split_extension(
        local,
        policy.delimiters,
        owner_request_special=policy.owner_request_special,
        double_bounce_sender=policy.double_bounce_sender,
    )
    full = join_address(local, domain)
    bare = join_address(base, domain) if extension is not None else None

    found = await _find_form(maps, full, False, True, trace)
    if found is not None:
        return Hit(found[0], found[1], None)
    if bare is not None:
        found = await _find_form(maps, bare, True, True, trace)
        if found is not None:
            return Hit(found[0], found[1], extension)
    if not domain:
        return None
    if domain == policy.myorigin.lower() or await is_local_domain(domain, policy.classes, trace):
        found = await _find_form(maps, local, True, False, trace)
        if found is not None:
            return Hit(found[0], found[1], None)
        if extension is not None:
            found = await _find_form(maps, base, True, False, trace)
            if found is not None:
                return Hit(found[0], found[1], extension)
    value = await _probe(maps, "@" + domain, True, trace)
    if value is not None:
        return Hit(value, "@" + domain, None)
    return None


# ---------------------------------------------------------------------------
# values → addresses


class _ListScanner:
    """State of :func:`parse_address_list` while it walks a value."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.words: list[str] = []
        self.word: list[str] = []
        self.route: list[str] | None = None  # inside <...>
        self.routes: list[str] = []
        self.depth = 0
        self.in_quote = self.escape = False

    def end_word(self) -> None:
        if self.word:
            self.words.append("".join(self.word))
            self.word.clear()

    def end_route(self) -> None:
        if self.route is not None:
            self.routes.append("".join(self.route).strip())
            self.route = None

    def end_element(self) -> None:
        self.end_route()
        self.end_word()
        for text in self.routes or self.words:
            # A source route inside a route-addr is dropped (RFC 5322 obs-route).
            mailbox = text.split(":", 1)[1] if text.startswith("@") and ":" in text else text
            address = internal_form(mailbox) if mailbox else ""
            if address:  # a lone quote leaves nothing (never an empty address)
                self.addresses.append(address)
        self.words.clear()
        self.routes.clear()

    def quoted(self, char: str, target: list[str]) -> bool:
        """Characters inside quotes, escapes and comments; True when consumed."""
        if self.escape:
            target.append(char)
            self.escape = False
        elif self.in_quote:
            target.append(char)
            self.escape = char == "\\"
            self.in_quote = char != '"'
        elif self.depth:
            self.depth += {"(": 1, ")": -1}.get(char, 0)
        else:
            return False
        return True

    def feed(self, char: str) -> None:
        target = self.route if self.route is not None else self.word
        if self.quoted(char, target):
            return
        if char == "(":
            self.end_word()
            self.depth = 1
        elif char == '"':
            target.append(char)
            self.in_quote = True
        elif char == "<" and self.route is None:
            self.end_word()
            self.route = []
        elif char == ">" and self.route is not None:
            self.end_route()
        elif char == ",":
            self.end_element()
        elif char.isspace():
            if self.route is None:
                self.end_word()
        else:
            target.append(char)


def parse_address_list(value: str) -> list[str]:
    """An RFC 5322 address list as Postfix reads a table value: elements
    separated by commas, words of an element without a ``<route-addr>`` each
    an address (Postfix inserts the missing commas), ``(comments)`` dropped,
    ``Name <addr>`` reduced to ``addr``; each address in internal form."""
    scanner = _ListScanner()
    for char in value:
        scanner.feed(char)
    scanner.end_element()
    return scanner.addresses


@functools.lru_cache(maxsize=4096)
def _address_list(value: str) -> tuple[str, ...]:
    """:func:`parse_address_list`, remembered: a table value is read once,
    not at every lookup that returns it (the scanner goes character by
    character)."""
    return tuple(parse_address_list(value))


async def map_address(
    maps: Maps,
    address: str,
    policy: SearchPolicy,
    *,
    propagate: bool,
    trace: Trace | None = None,
) -> list[str] | None:
    """Look ``address`` up and return the addresses it maps to (None: not
    found).  ``@domain`` as the first result becomes ``localpart@domain``;
    bare names get ``@$myorigin``; with ``propagate`` an extension that was
    split off to find the hit goes back into every result.  A value that holds
    no address is a temporary error, as in Postfix."""
    hit = await find(maps, address, policy, trace)
    if hit is None:
        return None
    results = list(_address_list(hit.value))
    if not results:
        log.warning(
            '%s lookup of %s returns non-address result "%s"', maps.parameter, address, hit.value
        )
        raise TableTempFail(f"{maps.parameter}: non-address result for {address}")
    if results[0].startswith("@"):
        local = split_address(address)[0]
        if hit.extension is not None and local.endswith(hit.extension):
            local = local[: len(local) - len(hit.extension)]
        results[0] = local + results[0]
    out: list[str] = []
    for result in results:
        mapped = result
        if hit.extension is not None and propagate:
            mapped = insert_extension(mapped, hit.extension)
        if "@" not in mapped and policy.append_at_myorigin:
            mapped = f"{mapped}@{policy.myorigin}"
        out.append(mapped)
    if trace is not None:
        trace.add("expand", maps.parameter, address, outcome=", ".join(out))
    return out
