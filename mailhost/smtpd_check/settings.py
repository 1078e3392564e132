"""Every parameter the restriction checks read, once per listener.

Restriction lists are split as Postfix splits them (commas and white space,
``{ }`` grouping kept); the tables they name (``check_*_access type:name``, a
bare ``type:name``, ``rbl_reply_maps``) are opened here, at start, so a
missing table is a configuration error logged once, and every lookup at SMTP
time finds its :class:`~mailhost.tables.maps.Maps` ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.errors import ConfigError
from mailhost.smtpd_check.policy_client import PolicyServices
from mailhost.smtpd_check.policy_settings import settings_from
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

if TYPE_CHECKING:
    from mailhost.smtpd_check.store_routes import StoreQuota

#: The restriction lists of the stages, by parameter.
STAGE_PARAMETERS = (
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions",
    "smtpd_etrn_restrictions",
)


#: Restrictions whose argument contains ``:`` but is not a table.
NOT_TABLES = frozenset({"check_policy_service"})


@dataclass
class CheckSettings:
    """See the module docstring.  Tests build one directly."""

    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: smtpd_restriction_classes: class name → its restriction list.
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    delay_reject: bool = True
    relay_before_recipient: bool = True
    reject_unlisted_recipient: bool = True
    reject_unlisted_sender: bool = False
    soft_bounce: bool = False
    #: smtpd_log_access_permit_actions (lowercased names; ``static:all``).
    log_permit_actions: frozenset[str] = frozenset()
    null_access_lookup_key: str = "<>"
    #: parent_domain_matches_subdomains contains smtpd_access_maps.
    access_parent_style: bool = True
    allow_untrusted_routing: bool = False
    #: smtpd_sasl_auth_enable: without it check_sasl_access is ignored.
    sasl_enable: bool = True
    codes: dict[str, int] = field(default_factory=dict)
    tempfail_actions: dict[str, str] = field(default_factory=dict)
    default_rbl_reply: str = ""
    rbl_reply_maps: Maps | None = None
    #: Every table named in a restriction list or class, by its spec.
    maps: dict[str, Maps] = field(default_factory=dict)
    #: check_policy_service clients, by service name.
    policy: PolicyServices = field(default_factory=PolicyServices)
    #: check_store_quota_service's alias expansion and routing (set by
    #: :func:`mailhost.smtpd_check.build.smtpd_checks`, which has the resolver).
    store_quota: StoreQuota | None = None

    def code(self, name: str) -> int:
        return self.codes.get(name, _CODE_DEFAULTS[name])

    def tempfail_action(self, name: str) -> str:
        return self.tempfail_actions.get(name, "defer_if_permit")

    def table(self, spec: str) -> Maps | None:
        return self.maps.get(spec)

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry) -> CheckSettings:
        lists = {name: tuple(split_list(cfg.get(name))) for name in STAGE_PARAMETERS}
        classes: dict[str, tuple[str, ...]] = {}
        for name in split_list(cfg.get("smtpd_restriction_classes")):
            if name not in cfg.explicit:
                raise ConfigError(f"restriction class `{name}' needs a definition")
            classes[name] = tuple(split_list(cfg.get(name)))
        subdomains = {v.lower() for v in split_list(cfg.get("parent_domain_matches_subdomains"))}
        maps: dict[str, Maps] = {}
        policy = _policy_services(cfg)
        for names in (*lists.values(), *classes.values()):
            for before, name in zip(("", *names), names, strict=False):
                if before.lower() == "check_policy_service" and ":" in name:
                    policy.register(name)
                if before.lower() in NOT_TABLES or name in maps:
                    continue
                if ":" in name and not name.startswith("{"):
                    maps[name] = Maps.from_value(name, name, registry)
        rbl_maps = cfg.get("rbl_reply_maps").strip()
        return cls(
            lists=lists,
            classes=classes,
            delay_reject=cfg.get_bool("smtpd_delay_reject"),
            relay_before_recipient=cfg.get_bool("smtpd_relay_before_recipient_restrictions"),
            reject_unlisted_recipient=cfg.get_bool("smtpd_reject_unlisted_recipient"),
            reject_unlisted_sender=cfg.get_bool("smtpd_reject_unlisted_sender"),
            soft_bounce=cfg.get_bool("soft_bounce"),
            log_permit_actions=frozenset(
                v.lower() for v in split_list(cfg.get("smtpd_log_access_permit_actions"))
            ),
            null_access_lookup_key=cfg.get("smtpd_null_access_lookup_key"),
            access_parent_style="smtpd_access_maps" in subdomains,
            allow_untrusted_routing=cfg.get_bool("allow_untrusted_routing"),
            sasl_enable=cfg.get_bool("smtpd_sasl_auth_enable"),
            codes={name: cfg.get_int(name) for name in _CODE_DEFAULTS},
            tempfail_actions={name: cfg.get(name).strip().lower() for name in _TEMPFAIL_ACTIONS},
            default_rbl_reply=cfg.raw("default_rbl_reply"),
            rbl_reply_maps=Maps.from_value("rbl_reply_maps", rbl_maps, registry)
            if rbl_maps
            else None,
            maps=maps,
            policy=policy,
        )


def _policy_services(cfg: Config) -> PolicyServices:
    prefix = "smtpd_policy_service_"
    names = ("timeout", "max_idle", "max_ttl", "retry_delay", "request_limit", "try_limit",
             "default_action", "policy_context")  # fmt: skip
    return PolicyServices(
        base=settings_from({name: cfg.get(prefix + name) for name in names}),
        queue_directory=cfg.get("queue_directory"),
        stress=cfg.get("stress"),
        smtputf8=cfg.get_bool("smtputf8_enable"),
    )


#: Reply-code parameters and their Postfix 3.7.11 defaults.
_CODE_DEFAULTS = {
    "access_map_reject_code": 554,
    "access_map_defer_code": 450,
    "reject_code": 554,
    "defer_code": 450,
    "relay_domains_reject_code": 554,
    "invalid_hostname_reject_code": 501,
    "non_fqdn_reject_code": 504,
    "unknown_client_reject_code": 450,
    "unknown_hostname_reject_code": 450,
    "unknown_address_reject_code": 450,
    "maps_rbl_reject_code": 554,
    "plaintext_reject_code": 450,
    "multi_recipient_bounce_reject_code": 550,
    "unknown_virtual_alias_reject_code": 550,
}

_TEMPFAIL_ACTIONS = (
    "reject_tempfail_action",
    "unknown_helo_hostname_tempfail_action",
    "unknown_address_tempfail_action",
)
