"""``mailhost mailq`` and ``mailhost postqueue``: Postfix's postqueue(1).

* ``mailq`` = ``postqueue -p``: the queue listing of spec 7.2, byte for byte
  Postfix 3.7's (:mod:`mailhost.queue.listing`); ``postqueue -j``: one JSON
  object per message.  Both read ``queue_directory`` directly (mailhost has
  no showq service), in Postfix's scan order: maildrop, active, incoming,
  deferred, hold;
* ``postqueue -f``: ask the queue manager of the running server to deliver
  all queued mail now; ``postqueue -i QID``: one deferred message;
  ``postqueue -s SITE``: the deferred mail for a destination listed in
  ``fast_flush_domains`` (default ``$relay_domains``; Postfix refuses other
  destinations, with the same words).  They go
  through the trigger socket ``public/qmgr`` (:mod:`mailhost.qmgr.trigger`);
  with no server running: ``postqueue: fatal: Cannot flush mail queue - mail
  system is down``, exit 69.

Usage errors print Postfix's usage line and exit 69, as postqueue does.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from mailhost.cli.common import command_errors, config_dir_option, fatal
from mailhost.cli.queuedir import QueuedFile, maillog_only, open_queue, read_queues
from mailhost.config import Config
from mailhost.errors import EX_TEMPFAIL, EX_UNAVAILABLE
from mailhost.qmgr.trigger import (
    FLUSH,
    FLUSH_ID,
    FLUSH_SITE,
    MailSystemDown,
    Request,
    send_request,
    valid_site,
)
from mailhost.queue.ids import is_queue_id
from mailhost.queue.layout import MAILDROP, SCAN_ORDER
from mailhost.queue.listing import Listed, json_text, listed, mailq_text
from mailhost.queue.store import QueueStore
from mailhost.tables.matchlist import DomainList
from mailhost.tables.registry import TableRegistry

USAGE = (
    "usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | postqueue -s site"
)


def listing(config: Config, files: list[QueuedFile]) -> list[Listed]:
    empty = config.get("empty_address_recipient")
    return [
        # maildrop files have no size record in Postfix: showq lists the file size.
        listed(f.entry.queue_name, f.qfile, empty=empty,
               size=f.file_size if f.entry.queue_name == MAILDROP else None)
        for f in files
    ]  # fmt: skip


def print_queue(config: Config, store: QueueStore, *, as_json: bool) -> None:
    items = listing(config, read_queues(store, SCAN_ORDER))
    if as_json:
        sys.stdout.write(json_text(items))
    else:
        sys.stdout.write(mailq_text(items, long_ids=config.get_bool("enable_long_queue_ids")))
    sys.stdout.flush()


def _fatal(config: Config, message: str, status: int = EX_UNAVAILABLE) -> None:
    """Postfix's fatal: on stderr and in the maillog."""
    maillog_only(config, "postqueue", logging.CRITICAL, message)
    fatal("postqueue", message, status)


async def fast_flush(config: Config, site: str) -> bool:
    """True when ``fast_flush_domains`` lists ``site`` (postconf(5))."""
    registry = TableRegistry.from_config(config)
    try:
        domains = DomainList.parse(
            config.get("fast_flush_domains"), registry,
            match_subdomains="fast_flush_domains"
            in config.get_list("parent_domain_matches_subdomains"),
        )  # fmt: skip
        return await domains.match(site)
    finally:
        await registry.close()


def flush(config: Config, store: QueueStore, request: Request) -> None:
    """``-f`` / ``-i``: hand the request to the running queue manager."""
    try:
        answer = send_request(store.root, request)
    except MailSystemDown as down:
        if down.missing:
            click.echo(f"postqueue: warning: unable to look up public/qmgr: {down}", err=True)
        _fatal(config, "Cannot flush mail queue - mail system is down")
        return
    if not answer.startswith("ok"):
        _fatal(config, f"Cannot flush mail queue - {answer or 'no answer from the queue manager'}")


@click.command("mailq", context_settings={"help_option_names": ["--help"]})
@config_dir_option
@click.option("-v", "verbose", count=True, hidden=True)
@command_errors("mailq")
def mailq(config_dir: Path | None, verbose: int) -> None:
    """List the mail queue (postqueue -p)."""
    config, store = open_queue(config_dir, error_status=EX_UNAVAILABLE, maillog_status=EX_TEMPFAIL)
    print_queue(config, store, as_json=False)


@click.command("postqueue", context_settings={"help_option_names": ["--help"]})
@config_dir_option
@click.option("-p", "listing_", is_flag=True, help="List the queue (as mailq).")
@click.option("-j", "as_json", is_flag=True, help="List the queue as JSON lines.")
@click.option("-f", "flush_all", is_flag=True, help="Deliver all queued mail now.")
@click.option("-i", "queue_id", metavar="QUEUEID", help="Deliver one deferred message now.")
@click.option("-s", "site", metavar="SITE", help="Deliver deferred mail for SITE now.")
@click.option("-v", "verbose", count=True, hidden=True)
@command_errors("postqueue")
def postqueue(
    config_dir: Path | None,
    listing_: bool,
    as_json: bool,
    flush_all: bool,
    queue_id: str | None,
    site: str | None,
    verbose: int,
) -> None:
    """Postfix's postqueue: list (-p, -j) or flush (-f, -i, -s) the queue."""
    modes = sum([listing_, as_json, flush_all, queue_id is not None, site is not None])
    if modes != 1:
        fatal("postqueue", USAGE, EX_UNAVAILABLE)
    config, store = open_queue(config_dir, error_status=EX_UNAVAILABLE)
    if listing_ or as_json:
        print_queue(config, store, as_json=as_json)
    elif flush_all:
        flush(config, store, Request(FLUSH))
    elif site is not None:
        if not valid_site(site):
            _fatal(config, f'Cannot flush mail queue - invalid destination: "{site}"')
        if not asyncio.run(fast_flush(config, site)):
            _fatal(config, f'Flush service is not configured for destination "{site}"')
        flush(config, store, Request(FLUSH_SITE, site))
    else:
        assert queue_id is not None
        if not is_queue_id(queue_id):
            _fatal(config, f'Cannot flush queue ID - invalid name: "{queue_id}"')
        flush(config, store, Request(FLUSH_ID, queue_id))
