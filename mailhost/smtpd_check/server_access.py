"""Access tables keyed on a domain's DNS servers:
``check_{client,reverse_client_hostname,helo,sender,recipient}_{mx,ns,a}_access``
(Postfix's check_server_access()).

For the name being judged (the client's verified or reverse name, the HELO
name, the sender's or recipient's domain), the servers are:

* ``mx``: its MX hosts; a name without MX records is its own MX host, a null
  MX is not looked at, an address literal is its own server;
* ``ns``: its name servers, or the nearest parent domain's;
* ``a``: the name itself (addresses only; a literal is its own address).

Each server's host name (``mx``/``ns``; parent domains too) is looked up in
the table, then each of its addresses (and parent networks); the first entry
found decides, with the access(5) action of
:func:`mailhost.smtpd_check.actions.table_result`.  As these names are under
the client's control, ``OK`` is refused (``451 4.3.5``; use ``DUNNO``).
A DNS error skips the check with a warning.
"""

from __future__ import annotations

from mailhost.hostnames import valid_hostaddr, valid_mailhost_addr
from mailhost.log import logger
from mailhost.smtpd_check import access
from mailhost.smtpd_check.access_checks import forbid_allowlist, lookup
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.dns_lookup import DnsStatus, ascii_domain
from mailhost.smtpd_check.state import ReplyClass, Status

log = logger("smtpd")

#: dns_rr_list_limit: addresses looked at, at most, for one check.
ADDRESS_LIMIT = 100


async def _addr_access(
    call: Call, table: str, address: str, reply_name: str, reply_class: str
) -> tuple[Status, bool]:
    keys = access.address_keys(address)
    return await lookup(call, table, keys, address, reply_name, reply_class)


async def _domain_access(
    call: Call, table: str, name: str, reply_name: str, reply_class: str
) -> tuple[Status, bool]:
    keys = access.host_keys(name, call.ctx.settings.access_parent_style)
    return await lookup(call, table, keys, name, reply_name, reply_class)


async def _servers(call: Call, domain: str, name: str, rdtype: str) -> list[str] | None:
    """The server names of ``domain``, or None when the check is skipped."""
    if rdtype == "A":
        return [domain]
    dns = call.ctx.facts.dns
    found = await dns.lookup(domain, rdtype)
    if found.status is DnsStatus.NULLMX:
        return None
    shown: str | None = domain
    if found.status is DnsStatus.NOTFOUND:
        if rdtype == "MX":
            return [domain]
        # NS: the nearest parent domain with name servers.
        parent = domain
        while True:
            dot = parent.find(".")
            if dot < 0 or dot == len(parent) - 1:
                shown = None
                break
            parent = parent[dot + 1 :]
            shown = parent
            found = await dns.lookup(parent, rdtype)
            if found.status is not DnsStatus.NOTFOUND:
                break
    if found.status is not DnsStatus.OK:
        log.warning("Unable to look up %s host for %s: %s", rdtype, shown or name, found.error)
        return None
    if rdtype == "MX":
        return [record.partition(" ")[2] for record in found.records]
    return list(found.records)


async def check_server_access(
    call: Call, table: str, name: str, rdtype: str, reply_name: str, reply_class: str
) -> Status:
    domain = name.rpartition("@")[2] if "@" in name else name
    if domain.startswith("["):
        if rdtype not in ("A", "MX") or not domain.endswith("]"):
            return Status.DUNNO
        inside = domain[1:-1]
        if not valid_mailhost_addr(inside):
            return Status.DUNNO
        bare = inside[5:] if inside[:5].lower() == "ipv6:" else inside
        status, _ = await _addr_access(call, table, bare, reply_name, reply_class)
        return status
    domain = ascii_domain(domain)
    servers = await _servers(call, domain, name, rdtype)
    if servers is None:
        return Status.DUNNO
    dns = call.ctx.facts.dns
    count = 0
    for server in servers:
        if valid_hostaddr(server):
            status, found = await _addr_access(call, table, server, reply_name, reply_class)
            if status or found:
                return status
            continue
        if rdtype != "A":
            status, found = await _domain_access(call, table, server, reply_name, reply_class)
            if status or found:
                return status
        addresses = await dns.addresses(server)
        if addresses.status is not DnsStatus.OK:
            if rdtype != "A":
                log.warning(
                    "Unable to look up %s host %s for %s %s: %s",
                    rdtype,
                    server,
                    reply_class,
                    reply_name,
                    gai_error(addresses.status),
                )
            continue
        for address in addresses.records:
            count += 1
            if count > ADDRESS_LIMIT:
                log.warning(
                    "check_server_access: %s server address count limit (%d) exceeded"
                    " for %s %s -- ignoring the remainder",
                    rdtype,
                    ADDRESS_LIMIT,
                    reply_class,
                    reply_name,
                )
                return Status.DUNNO
            status, found = await _addr_access(call, table, address, reply_name, reply_class)
            if status or found:
                return status
    return Status.DUNNO


def gai_error(status: DnsStatus) -> str:
    """What getaddrinfo() says (gai_strerror) for a failed address lookup."""
    if status is DnsStatus.RETRY:
        return "Temporary failure in name resolution"
    if status is DnsStatus.FAIL:
        return "Non-recoverable failure in name resolution"
    return "Name or service not known"


def _restriction(subject: str, rdtype: str) -> Restriction:
    async def check(call: Call) -> Status:
        table = call.table_argument()
        state = call.ctx.state
        client = state.client
        if subject == "client":
            if client.name.lower() == "unknown":
                return Status.DUNNO
            target, reply_name, reply_class = client.name, client.namaddr, ReplyClass.CLIENT
        elif subject == "reverse_client":
            if client.reverse_name.lower() == "unknown":
                return Status.DUNNO
            target = reply_name = client.reverse_name
            reply_class = ReplyClass.REVERSE_CLIENT
        elif subject == "helo":
            if state.helo is None:
                return Status.DUNNO
            target = reply_name = state.helo
            reply_class = ReplyClass.HELO
        elif subject == "sender":
            if not state.sender:
                return Status.DUNNO
            target = reply_name = state.sender
            reply_class = ReplyClass.SENDER
        else:
            if not state.recipient:
                return Status.DUNNO
            target = reply_name = state.recipient
            reply_class = ReplyClass.RECIPIENT
        status = await check_server_access(call, table, target, rdtype, reply_name, reply_class)
        forbid_allowlist(call, status, target)
        return status

    return check


#: The restriction names' middle part for each subject.
_NAMES = {
    "client": "client",
    "reverse_client": "reverse_client_hostname",
    "helo": "helo",
    "sender": "sender",
    "recipient": "recipient",
}

RESTRICTIONS: dict[str, Restriction] = {
    f"check_{_NAMES[subject]}_{rdtype.lower()}_access": _restriction(subject, rdtype)
    for subject in _NAMES
    for rdtype in ("MX", "NS", "A")
}
