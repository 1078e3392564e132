"""The quota configuration, read once from main.cf, and the lookup of one
mailbox's limits (spec 6.4, 6.5).

Quota is on when ``virtual_mailbox_limit_maps`` is set (the VDA patch's
parameter: a byte count per recipient, 0 = unlimited, PostfixAdmin's
``mailbox.quota``); with it empty mailhost never touches ``maildirsize``.
mailhost's own parameters:

* ``mailhost_quota_domain_maps`` — optional per-domain cap in bytes, looked up
  with the recipient's domain as key (PostfixAdmin's ``domain.maxquota`` in
  bytes; 0 or no entry = no cap).  It lowers each mailbox limit, and gives an
  unlimited mailbox (or one without an entry) the cap;
* ``mailhost_quota_overquota_bounce`` — ``yes`` (default): a message that does
  not fit bounces with 5.2.2; ``no``: it is deferred with 4.2.2 (the VDA
  patch's ``virtual_overquota_bounce``, Dovecot's ``quota_full_tempfail``);
* ``mailhost_quota_grace`` — Dovecot's ``quota_grace`` (``10%``, ``1M``);
  default 0, so a mailbox never goes past its limit;
* ``mailhost_quota_warning_thresholds`` — usage percentages (``80, 95``) at
  which the owner gets a warning, once per upward crossing;
* ``mailhost_quota_status_overquota`` / ``mailhost_quota_status_toolarge`` —
  the RCPT TO refusal, as Dovecot's quota-status settings of the same names
  (``NNN D.D.D text``); default what quota-status answers without them:
  ``554 5.2.2`` and Dovecot's quota-exceeded message.  smtpd words it as
  Postfix words a policy or access result:
  ``554 5.2.2 <ADDR>: Recipient address rejected: TEXT``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhost.address import normalize_domain, split_address
from mailhost.config import Config
from mailhost.errors import ConfigError
from mailhost.quota.maildirsize import QuotaLimits
from mailhost.quota.policy import (
    QuotaPolicy,
    QuotaValueError,
    effective_limit,
    parse_grace,
    parse_limit_value,
    parse_percents,
)
from mailhost.reply import Reply
from mailhost.resolve.keys import SearchPolicy, find
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

_STATUS = re.compile(r"([45])([0-9][0-9])(?:[ \t]+([45]\.[0-9]{1,3}\.[0-9]{1,3}))?(?:[ \t]+(.*))?")


@dataclass(frozen=True)
class RefusalTemplate:
    """A quota-status style reply: code, enhanced status, text."""

    code: int
    status: str
    text: str

    def reply(self, shown: str) -> Reply:
        """The RCPT reply for ``shown`` (external form), as smtpd words a
        numeric policy/access action (smtpd_check.c check_table_result)."""
        return Reply(self.code, self.status, f"<{shown}>: Recipient address rejected: {self.text}")


def parse_refusal(name: str, value: str) -> RefusalTemplate:
    """``554 5.2.2 Mailbox is full``; without an enhanced status the mailbox
    full status of the code's class (``552 text`` → 5.2.2)."""
    m = _STATUS.fullmatch(value.strip())
    if m is None:
        raise ConfigError(f"bad {name} value {value!r}: expected 4NN or 5NN, status and text")
    code = int(m.group(1) + m.group(2))
    status = m.group(3) or f"{m.group(1)}.2.2"
    if status[0] != m.group(1):
        raise ConfigError(f"bad {name} value {value!r}: {status} does not match code {code}")
    return RefusalTemplate(code, status, (m.group(4) or "Mailbox is full").strip())


@dataclass(frozen=True)
class QuotaConfig:
    """Every quota parameter, once."""

    limit_maps: Maps
    domain_maps: Maps
    policy: QuotaPolicy
    overquota: RefusalTemplate
    toolarge: RefusalTemplate | None = None

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry) -> QuotaConfig | None:
        """None when ``virtual_mailbox_limit_maps`` is empty (no quota)."""
        if not cfg.get("virtual_mailbox_limit_maps").strip():
            return None

        def maps(name: str) -> Maps:
            return Maps.from_value(name, cfg.get(name), registry)

        try:
            grace_bytes, grace_percent = parse_grace(cfg.get("mailhost_quota_grace"))
            percents = parse_percents(cfg.get("mailhost_quota_warning_thresholds"))
        except QuotaValueError as exc:
            raise ConfigError(str(exc)) from None
        toolarge = cfg.get("mailhost_quota_status_toolarge").strip()
        return cls(
            limit_maps=maps("virtual_mailbox_limit_maps"),
            domain_maps=maps("mailhost_quota_domain_maps"),
            policy=QuotaPolicy(
                bounce=cfg.get_bool("mailhost_quota_overquota_bounce"),
                grace_bytes=grace_bytes,
                grace_percent=grace_percent,
                warn_percents=percents,
            ),
            overquota=parse_refusal(
                "mailhost_quota_status_overquota", cfg.get("mailhost_quota_status_overquota")
            ),
            toolarge=parse_refusal("mailhost_quota_status_toolarge", toolarge)
            if toolarge
            else None,
        )

    async def limits_for(self, address: str, search: SearchPolicy) -> QuotaLimits | None:
        """The limits configured for a final recipient, or None when neither
        map has an entry (then an existing ``maildirsize`` header is kept).
        Raises TableTempFail, and QuotaValueError for a value that is not a
        byte count."""
        hit = await find(self.limit_maps, address, search)
        mailbox = None if hit is None else parse_limit_value(hit.value)
        cap = None
        domain = split_address(address)[1]
        if self.domain_maps and domain:
            value = await self.domain_maps.lookup(normalize_domain(domain))
            cap = None if value is None else parse_limit_value(value)
        if mailbox is None and not cap:
            return None
        return QuotaLimits(effective_limit(mailbox or 0, cap))
