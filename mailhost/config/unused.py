"""Which settings of main.cf and master.cf ``mailhost serve`` will not act on,
said once at start, as postconf(1) says it.

Postfix's postconf warns about a parameter nobody uses (recorded from
postconf 3.7.11, tests/smtpd/postfix_caps.json)::

    postconf: warning: /etc/postfix/main.cf: unused parameter: foo_bar=1
    postconf: warning: /etc/postfix/master.cf: unused parameter: bogus_override=1

A name is *used* when Postfix knows it, when a main.cf value or a master.cf
``-o`` value refers to it as ``$name`` (``-o smtpd_client_restrictions=
$mua_client_restrictions``), or when ``smtpd_restriction_classes`` lists it.
mailhost adds a second case: a name Postfix knows
(:mod:`mailhost.config.postfix_names`) that mailhost does not implement
(not declared in :mod:`mailhost.config.params`) is reported as::

    warning: /etc/postfix/main.cf: parameter not implemented by mailhost: NAME

so an administrator bringing a Postfix main.cf learns which of its settings
have no effect here.  Parameters in ``-o`` overrides of non-smtpd services
are left to :mod:`mailhost.config.services` (the whole override is named
there).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailhost.config import Config
from mailhost.config.expand import referenced_names
from mailhost.config.lists import split_list
from mailhost.config.mastercf import MasterEntry
from mailhost.config.params import BY_NAME
from mailhost.config.postfix_names import BUILTIN, SERVICE_SUFFIXES
from mailhost.config.services import is_smtpd_listener


def is_postfix_parameter(name: str, services: Iterable[str]) -> bool:
    """True for a name Postfix 3.7.11 knows: built in, or a master.cf
    service's name followed by one of the per-transport suffixes."""
    if name in BUILTIN:
        return True
    return any(
        name.startswith(service + "_") and name[len(service) + 1 :] in SERVICE_SUFFIXES
        for service in services
    )


@dataclass(frozen=True)
class Unused:
    """One setting mailhost will not act on."""

    #: main.cf or master.cf
    where: Path
    name: str
    value: str
    #: Postfix knows the name (mailhost does not implement it).
    postfix_knows: bool

    def message(self) -> str:
        if self.postfix_knows:
            return f"{self.where}: parameter not implemented by mailhost: {self.name}"
        return f"{self.where}: unused parameter: {self.name}={self.value}"


def unused_settings(cfg: Config, entries: Sequence[MasterEntry], master_cf: Path) -> list[Unused]:
    """main.cf settings, then smtpd listeners' ``-o`` settings, that mailhost
    does not act on, in file order (one per name and file)."""
    services = {entry.service for entry in entries}
    used: set[str] = set()
    for name in list(cfg.explicit) + list(BY_NAME):
        used |= referenced_names(cfg.raw(name))
    for entry in entries:
        for _, value in entry.overrides:
            used |= referenced_names(value)
    if "smtpd_restriction_classes" in cfg.explicit:
        used |= set(split_list(cfg.raw("smtpd_restriction_classes")))
    out: list[Unused] = []
    for name, value in cfg.explicit.items():
        if name in BY_NAME:
            continue
        knows = is_postfix_parameter(name, services)
        if knows or name not in used:
            out.append(Unused(cfg.main_cf, name, value, knows))
    seen: set[str] = set()
    for entry in entries:
        if not is_smtpd_listener(entry.type, entry.program):
            continue
        for name, value in entry.overrides:
            if name in BY_NAME or name in seen:
                continue
            seen.add(name)
            knows = is_postfix_parameter(name, services)
            if knows or (name not in used and name not in cfg.explicit):
                out.append(Unused(master_cf, name, value, knows))
    return out
