"""access(5) lookups: which keys are tried, in which order, for a host name,
a network address, a client (name then address) and an e-mail address.

* host names and domains: the name, then each parent domain — ``parent`` when
  ``parent_domain_matches_subdomains`` lists ``smtpd_access_maps`` (the
  default), ``.parent`` otherwise; never for a numerical name;
* addresses: ``1.2.3.4``, ``1.2.3``, ``1.2``, ``1`` (IPv6: by ``:`` groups);
* e-mail addresses: ``user+ext@domain``, ``user@domain``, the domain and its
  parents, ``user+ext@``, ``user@``.

Only the first key of a search is shown to pattern tables (regexp, pcre,
cidr); the derived keys are "partial" and only fixed-string tables see them.
A table error makes the lookup answer ``451 4.3.5 Server configuration
error``, as Postfix's does.  The value found goes to
:func:`mailhost.smtpd_check.actions.table_result`.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Iterator

from mailhost.address import split_address
from mailhost.errors import TableEmptyResult, TableTempFail
from mailhost.tables.maps import Maps

#: What a failed table lookup answers (check_access: maps->error).
TABLE_ERROR = "451 4.3.5 Server configuration error"


@functools.lru_cache(maxsize=1024)
def is_numerical(name: str) -> bool:
    """An address literal (bracketed or not); remembered, as the client and
    HELO names are asked about again at every RCPT."""
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def parent_keys(domain: str, parent_style: bool) -> Iterator[str]:
    """The parent-domain keys of ``domain`` (not the domain itself)."""
    labels = domain.split(".")
    for i in range(1, len(labels)):
        rest = ".".join(labels[i:])
        if not rest:
            continue
        yield rest if parent_style else "." + rest


def address_keys(address: str) -> Iterator[tuple[str, bool]]:
    """A network address and its parent networks (dotted or colon groups)."""
    delim = ":" if ":" in address else "."
    key = address
    partial = False
    while key:
        yield key, partial
        partial = True
        cut = key.rfind(delim)
        if cut <= 0:
            return
        key = key[:cut]


def mail_keys(address: str, delimiters: str, parent_style: bool) -> Iterator[tuple[str, bool]]:
    """Postfix's mail_addr_find() strategy for access maps."""
    local, domain = split_address(address)
    base = local
    if delimiters and local:
        # The first delimiter after the first character (str.find per
        # delimiter, not a generator over every character).
        cut = -1
        for delimiter in delimiters:
            i = local.find(delimiter, 1)
            if i > 0 and (cut < 0 or i < cut):
                cut = i
        if cut > 0:
            base = local[:cut]
    if domain:
        yield f"{local}@{domain}", False
        if base != local:
            yield f"{base}@{domain}", True
        yield domain, True
        for parent in parent_keys(domain, parent_style):
            yield parent, True
        yield f"{local}@", True
        if base != local:
            yield f"{base}@", True
    else:
        yield local, False


#: A search's keys, each with its ``partial`` flag.
Keys = tuple[tuple[str, bool], ...]


@functools.lru_cache(maxsize=4096)
def mail_key_list(address: str, delimiters: str, parent_style: bool) -> Keys:
    """:func:`mail_keys`, remembered (the sender's keys are asked for again
    at every RCPT under smtpd_delay_reject, a popular recipient's at every
    message)."""
    return tuple(mail_keys(address, delimiters, parent_style))


@functools.lru_cache(maxsize=4096)
def host_key_list(name: str, parent_style: bool) -> Keys:
    """:func:`host_keys`, remembered (the client's and HELO names)."""
    return tuple(host_keys(name, parent_style))


@functools.lru_cache(maxsize=4096)
def address_key_list(address: str) -> Keys:
    """:func:`address_keys`, remembered (the client's address)."""
    return tuple(address_keys(address))


async def find(maps: Maps, keys: Iterable[tuple[str, bool]]) -> str | None:
    """The first value of ``keys`` in ``maps``; :data:`TABLE_ERROR` when a
    table fails."""
    keys = iter(keys)
    try:
        # From memory while the table can answer (no coroutine, one metrics
        # update for the run of keys); a key memory cannot answer is asked
        # of the tables, and memory goes on from the next one.
        value, pending = maps.peek_search(keys)
        while pending is not None:
            key, partial = pending
            value = await maps.lookup(key, partial=partial)
            if value is not None:
                return value
            value, pending = maps.peek_search(keys)
    except (TableTempFail, TableEmptyResult):
        return TABLE_ERROR
    return value


def host_keys(name: str, parent_style: bool) -> Iterator[tuple[str, bool]]:
    """check_domain_access(): the name, then its parents (not for numbers)."""
    yield name, False
    if is_numerical(name):
        return
    for parent in parent_keys(name, parent_style):
        yield parent, True
