"""One builder for the main.cf files the tests write.

Most test configurations are the same virtual-domain host: the names recorded
from Postfix (``mx.example.com``), listening on loopback only, no local
delivery, and a DNS server on loopback that knows no names
(tests/nulldns.py), so that no query leaves the machine.  :func:`main_cf`
writes such a file from a few parameter groups and the test's own settings::

    main_cf(VIRTUAL_HOST, queue_directory=tmp_path / "queue", mynetworks="127.0.0.0/8")

One ``name = value`` line a parameter, in the order given; a parameter given
again keeps its place and takes the later value; ``None`` leaves it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests import nulldns

Params = Mapping[str, object]

#: The host name and domain the names recorded from Postfix use.
HOST: Params = {"myhostname": "mx.example.com", "mydomain": "example.com"}

#: No local(8) delivery: every domain is virtual.
NO_LOCAL: Params = {"mydestination": "", "alias_maps": "", "local_recipient_maps": ""}

#: Listen on IPv4 loopback only.
LOOPBACK: Params = {"inet_interfaces": "127.0.0.1", "inet_protocols": "ipv4"}

#: The virtual-domain host of most end-to-end tests (HOST, NO_LOCAL, LOOPBACK).
VIRTUAL_HOST: Params = {**HOST, **NO_LOCAL, **LOOPBACK}


def virtual_mailboxes(base: object, maps: str, domains: str = "example.com") -> Params:
    """virtual(8) delivering into Maildirs below ``base`` as uid/gid 5000."""
    return {
        "virtual_mailbox_domains": domains,
        "virtual_mailbox_base": base,
        "virtual_mailbox_maps": maps,
        "virtual_uid_maps": "static:5000",
        "virtual_gid_maps": "static:5000",
    }


def main_cf(*groups: Params, nulldns_line: bool = True, **params: object) -> str:
    """The text of a main.cf: ``groups`` then ``params``, and (unless
    ``nulldns_line`` is false) the line naming the loopback DNS server."""
    merged: dict[str, object] = {}
    for group in (*groups, params):
        merged.update(group)
    lines = [
        f"{name} = {value}" if value != "" else f"{name} ="
        for name, value in merged.items()
        if value is not None
    ]
    text = "".join(f"{line}\n" for line in lines)
    return text + nulldns.main_cf_line() if nulldns_line else text


def serve_site(directory: Path, mailboxes: str, *groups: Params, **params: object) -> str:
    """The site of the ``mailhost serve`` end-to-end tests: VIRTUAL_HOST,
    clients from 192.0.2.0/24 trusted, no error sleep, ``mailboxes``
    (virtual_mailbox_maps) below ``directory/vmail``, the queue in
    ``directory/queue``; then ``groups`` and ``params``."""
    return main_cf(
        VIRTUAL_HOST,
        {"mynetworks": "192.0.2.0/24", "smtpd_error_sleep_time": 0},
        virtual_mailboxes(directory / "vmail", mailboxes),
        {"queue_directory": directory / "queue"},
        *groups,
        params,
    )


def alice_site(directory: Path, *groups: Params, **params: object) -> str:
    """serve_site() with alice@example.com's Maildir, postmaster@example.com
    her alias."""
    return serve_site(
        directory,
        "inline:{alice@example.com=example.com/alice/}",
        {"virtual_alias_maps": "inline:{postmaster@example.com=alice@example.com}"},
        *groups,
        params,
    )


def local_host(directory: Path, mydestination: str = "$myhostname, localhost") -> Params:
    """local(8) delivery for mail.example.org on loopback: the aliases in
    ``directory/aliases`` (hash:), mailboxes in ``directory/spool``, the
    queue in ``directory/queue``."""
    return {
        "myhostname": "mail.example.org",
        "mydomain": "example.org",
        "mydestination": mydestination,
        **LOOPBACK,
        "alias_maps": f"hash:{directory}/aliases",
        "alias_database": f"hash:{directory}/aliases",
        "mail_spool_directory": directory / "spool",
        "queue_directory": directory / "queue",
    }
