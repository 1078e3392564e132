"""ETRN (RFC 1985): a client asks for the deferred mail of a domain now.

Postfix's smtpd checks the command (HELO first when smtpd_helo_required, no
MAIL transaction, one argument, a host name or an address literal, ``@`` or
``#`` in front dropped), runs smtpd_etrn_restrictions, and asks the fast
flush service: only a domain in ``fast_flush_domains`` (default
``$relay_domains``; subdomains too when parent_domain_matches_subdomains
lists it) is flushed.

mailhost has no separate flush(8) service and keeps no per-site logfile: the
queue manager itself finds the deferred messages with a recipient in the
domain and starts them (the ``flush-site`` request of its trigger socket,
:mod:`mailhost.qmgr.trigger`, as ``postqueue -s``).  Replies, as Postfix's:

* ``250 Queuing started`` — the queue manager took the request;
* ``459 <domain>: service unavailable`` — not a fast flush domain (logged
  ``warning: reject: ETRN domain... from CLIENT``);
* ``458 Unable to queue messages`` — no queue manager answers (logged
  ``warning: unable to talk to fast flush service``), or a table in
  fast_flush_domains failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.errors import TableTempFail
from mailhost.hostnames import valid_hostname, valid_mailhost_addr
from mailhost.log import logger
from mailhost.offload import run_blocking
from mailhost.qmgr.trigger import FLUSH_SITE, MailSystemDown, Request, send_request
from mailhost.reply import Reply
from mailhost.tables.matchlist import DomainList
from mailhost.tables.registry import TableRegistry

log = logger("smtpd")

SEND_HELO_FIRST = Reply(503, "", "Error: send HELO/EHLO first")
IN_TRANSACTION = Reply(503, "", "Error: MAIL transaction in progress")
SYNTAX = Reply(500, "", "Syntax: ETRN domain")
BAD_PARAMETER = Reply(501, "", "Error: invalid parameter syntax")
QUEUING_STARTED = Reply(250, "", "Queuing started")
UNABLE = Reply(458, "", "Unable to queue messages")

#: How long smtpd waits for the queue manager's answer.
TRIGGER_TIMEOUT = 10.0


def service_unavailable(site: str) -> Reply:
    return Reply(459, "", f"<{site}>: service unavailable")


def etrn_site(arg: str) -> Reply | str:
    """The site named by ETRN's argument, or the syntax error reply."""
    words = arg.split()
    if len(words) != 1:
        return SYNTAX
    site = words[0]
    if site[:1] in ("@", "#"):
        site = site[1:]
    literal = site.startswith("[") and site.endswith("]") and valid_mailhost_addr(site[1:-1])
    if not (valid_hostname(site) or literal):
        return BAD_PARAMETER
    return site


@dataclass
class FastFlush:
    """fast_flush_domains and the queue manager's trigger socket."""

    domains: DomainList
    queue_directory: str

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry) -> FastFlush:
        subdomains = {v.lower() for v in split_list(cfg.get("parent_domain_matches_subdomains"))}
        return cls(
            DomainList.parse(
                cfg.get("fast_flush_domains"),
                registry,
                match_subdomains="fast_flush_domains" in subdomains,
            ),
            cfg.get("queue_directory"),
        )

    async def send_site(self, site: str, client: str) -> Reply:
        """flush_send_site(): see the module docstring."""
        try:
            eligible = await self.domains.match(site)
        except TableTempFail:
            log.warning("unable to talk to fast flush service")
            return UNABLE
        if not eligible:
            log.warning("reject: ETRN %.100s... from %s", site, client)
            return service_unavailable(site)
        try:
            answer = await run_blocking(
                send_request,
                self.queue_directory,
                Request(FLUSH_SITE, site),
                timeout=TRIGGER_TIMEOUT,
            )
        except (MailSystemDown, OSError):
            answer = ""
        if not answer.startswith("ok"):
            log.warning("unable to talk to fast flush service")
            return UNABLE
        return QUEUING_STARTED
