"""The restriction stages of one listener, assembled from its configuration
(the composition root, :mod:`mailhost.master`, calls this)."""

from __future__ import annotations

from mailhost.config import Config
from mailhost.resolve.networks import NetworkList
from mailhost.resolve.resolver import Resolver
from mailhost.smtpd_check.facts import ResolverFacts
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry


def smtpd_checks(cfg: Config, registry: TableRegistry, resolver: Resolver) -> SmtpdChecks:
    login_maps = cfg.get("smtpd_sender_login_maps").strip()
    facts = ResolverFacts(
        resolver,
        NetworkList.parse("mynetworks", cfg.get("mynetworks"), registry),
        Maps.from_value("smtpd_sender_login_maps", login_maps, registry) if login_maps else None,
    )
    return SmtpdChecks(CheckSettings.from_config(cfg, registry), facts)
