"""What provisioning needs from main.cf, carried by the session.

A provisioning command opens one session; :func:`attach` puts these settings
in ``session.info`` so the rule and row functions below it (quota units,
password expiry, the PostfixAdmin log) read them without every signature
growing a parameter.  Each mirrors a PostfixAdmin ``$CONF`` setting, so the
two tools agree when both are set alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailhost.db.sizes import DEFAULT_MULTIPLIER

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mailhost.config import Config

_KEY = "mailhost_provisioning"


@dataclass(frozen=True)
class ProvisioningSettings:
    #: ``mailhost_quota_multiplier`` ($CONF['quota_multiplier']): bytes per MB.
    quota_multiplier: int = DEFAULT_MULTIPLIER
    #: ``mailhost_password_expiration`` ($CONF['password_expiration']).
    password_expiration: bool = True
    #: ``mailhost_postfixadmin_log`` ($CONF['logging']): write ``log`` rows.
    log_changes: bool = True
    #: Who the ``log`` rows name (PostfixAdmin: ``admin (REMOTE_ADDR)``).
    log_username: str = "mailhost (localhost)"

    @classmethod
    def from_config(cls, cfg: Config) -> ProvisioningSettings:
        from mailhost.errors import ConfigError  # noqa: PLC0415

        multiplier = cfg.get_int("mailhost_quota_multiplier")
        if multiplier <= 0:
            raise ConfigError(f"mailhost_quota_multiplier = {multiplier}: must be positive")
        return cls(
            quota_multiplier=multiplier,
            password_expiration=cfg.get_bool("mailhost_password_expiration"),
            log_changes=cfg.get_bool("mailhost_postfixadmin_log"),
        )


DEFAULT = ProvisioningSettings()


def attach(session: Session, settings: ProvisioningSettings) -> None:
    session.info[_KEY] = settings


def settings_of(session: Session) -> ProvisioningSettings:
    found = session.info.get(_KEY)
    return found if isinstance(found, ProvisioningSettings) else DEFAULT
