"""The restrictions that ask the DNS, gathered for :mod:`.generic`: the DNS
lists (:mod:`.dnsxl`), names that must exist (:mod:`.unknown`), access by a
domain's DNS servers (:mod:`.server_access`) and ``permit_mx_backup``
(:mod:`.mx_backup`).  Their lookups go through
:class:`~mailhost.smtpd_check.dns_lookup.DnsLookup`, the ``dns`` of the
checks' :class:`~mailhost.smtpd_check.context.Facts`."""

from __future__ import annotations

from mailhost.smtpd_check import dnsxl, mx_backup, server_access, unknown
from mailhost.smtpd_check.call import Restriction

RESTRICTIONS: dict[str, Restriction] = {
    **dnsxl.RESTRICTIONS,
    **unknown.RESTRICTIONS,
    **server_access.RESTRICTIONS,
    **mx_backup.RESTRICTIONS,
}
