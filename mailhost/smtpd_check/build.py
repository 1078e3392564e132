"""The restriction stages of one listener, assembled from its configuration
(the composition root, :mod:`mailhost.master`, calls this)."""

from __future__ import annotations

from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.resolve.networks import NetworkList
from mailhost.resolve.resolver import Resolver
from mailhost.smtpd_check.dns_lookup import DnsLookup
from mailhost.smtpd_check.facts import ResolverFacts
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.smtpd_check.store_routes import StoreQuota
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry


def smtpd_checks(
    cfg: Config, registry: TableRegistry, resolver: Resolver, *, recipient_stages: bool = True
) -> SmtpdChecks:
    """``recipient_stages=False`` leaves out the relay and recipient lists and
    the implicit reject_unlisted_recipient (for a recipient policy of a
    test's own)."""
    login_maps = cfg.get("smtpd_sender_login_maps").strip()
    backup_networks = cfg.get("permit_mx_backup_networks").strip()
    facts = ResolverFacts(
        resolver,
        NetworkList.parse("mynetworks", cfg.get("mynetworks"), registry),
        Maps.from_value("smtpd_sender_login_maps", login_maps, registry) if login_maps else None,
        dns=DnsLookup(
            split_list(cfg.get("mailhost_dns_servers")),
            protocols=cfg.get("inet_protocols").strip().lower(),
        ),
        myhostname=cfg.get("myhostname"),
        mx_backup_networks=NetworkList.parse("permit_mx_backup_networks", backup_networks, registry)
        if backup_networks
        else None,
    )
    settings = CheckSettings.from_config(cfg, registry)
    settings.store_quota = StoreQuota.from_config(cfg, registry, resolver)
    if not recipient_stages:
        settings.lists["smtpd_relay_restrictions"] = ()
        settings.lists["smtpd_recipient_restrictions"] = ()
        settings.reject_unlisted_recipient = False
    return SmtpdChecks(settings, facts)
