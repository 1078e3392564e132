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


async def find(
    maps: Maps, address: str, policy: SearchPolicy, trace: Trace | None = None
) -> Hit | None:
    """Search ``maps`` for ``address`` (internal form); raises TableTempFail."""
    if not maps:
        return None
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


def parse_address_list(value: str) -> list[str]:
    """An RFC 5322 address list as Postfix reads a table value: elements
    separated by commas or whitespace, ``(comments)`` dropped, ``Name <addr>``
    reduced to ``addr``; each address in internal form."""
    elements: list[str] = []
    current: list[str] = []
    angle: list[str] | None = None
    depth = 0
    in_quote = escape = False

    def flush() -> None:
        nonlocal angle
        text = "".join(angle if angle is not None else current).strip()
        if angle is not None and text.startswith("@") and ":" in text:
            text = text.split(":", 1)[1]  # source route in a route-addr
        if text:
            elements.append(internal_form(text))
        current.clear()
        angle = None

    for char in value:
        target = angle if angle is not None else current
        if escape:
            target.append(char)
            escape = False
        elif in_quote:
            target.append(char)
            if char == "\\":
                escape = True
            elif char == '"':
                in_quote = False
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif char == "(":
            depth = 1
        elif char == '"':
            target.append(char)
            in_quote = True
        elif char == "<":
            current.clear()  # a phrase before a route-addr is not an address
            angle = []
        elif (
            (char == ">" and angle is not None) or char == "," or (char.isspace() and angle is None)
        ):
            flush()
        elif not char.isspace():
            target.append(char)
    flush()
    return elements


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
    results = parse_address_list(hit.value)
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
