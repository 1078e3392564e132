"""The Sendmail macros sent to milters: which ones at each stage, and their values.

The lists are Postfix's ``milter_*_macros`` parameters (their defaults, in
:mod:`mailhost.config.params`, are ``postconf -d``'s of Postfix 3.7.11); a filter may replace a list
for itself in the option negotiation (SMFIR_SETSYMLIST).  Only macros with a
value are sent; ``milter_macro_defaults`` (``name=value`` list) supplies
values for macros that would have none.

The values follow Postfix's smtpd_milter.c: ``j`` is myhostname, ``_`` is
``name [addr]``, ``{daemon_name}`` milter_macro_daemon_name, ``v``
milter_macro_v, ``i`` the queue id once the queue file exists (after the
first accepted RCPT), ``{mail_addr}``/``{rcpt_addr}`` the envelope
addresses, ``{auth_*}`` the SASL login, ``{client_*}`` and ``{daemon_*}``
the two ends of the SMTP connection.  ``{mail_host}``, ``{mail_mailer}``,
``{rcpt_host}`` and ``{rcpt_mailer}`` (Postfix: the resolved nexthop and
transport) are sent only as ``{rcpt_mailer}=error`` for a rejected recipient.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.milter import wire


@dataclass(frozen=True)
class MacroLists:
    """The macro names sent before each event."""

    connect: tuple[str, ...]
    helo: tuple[str, ...]
    mail: tuple[str, ...]
    rcpt: tuple[str, ...]
    data: tuple[str, ...]
    end_of_header: tuple[str, ...]
    end_of_data: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: Config) -> MacroLists:
        def names(param: str) -> tuple[str, ...]:
            return tuple(split_list(cfg.get(param)))

        return cls(
            connect=names("milter_connect_macros"),
            helo=names("milter_helo_macros"),
            mail=names("milter_mail_macros"),
            rcpt=names("milter_rcpt_macros"),
            data=names("milter_data_macros"),
            end_of_header=names("milter_end_of_header_macros"),
            end_of_data=names("milter_end_of_data_macros"),
        )

    def overridden(self, symlists: Mapping[int, str]) -> MacroLists:
        """The lists after a filter's SETSYMLIST (stages it does not name keep
        Postfix's lists; a named stage gets exactly the filter's names)."""
        fields = {
            wire.SMFIM_CONNECT: "connect",
            wire.SMFIM_HELO: "helo",
            wire.SMFIM_ENVFROM: "mail",
            wire.SMFIM_ENVRCPT: "rcpt",
            wire.SMFIM_DATA: "data",
            wire.SMFIM_EOH: "end_of_header",
            wire.SMFIM_EOM: "end_of_data",
        }
        changes = {
            fields[stage]: tuple(split_list(names))
            for stage, names in symlists.items()
            if stage in fields
        }
        return replace(self, **changes)


def pairs(
    names: tuple[str, ...], values: Mapping[str, str | None], defaults: Mapping[str, str]
) -> list[tuple[str, str]]:
    """(name, value) for each macro in ``names`` that has a value.

    ``values`` and ``defaults`` are keyed by the bare name (``j``,
    ``daemon_name``); the name is sent as listed (``{daemon_name}``)."""
    out: list[tuple[str, str]] = []
    for name, key in keyed(names):
        value = values.get(key)
        if value is None:
            value = defaults.get(key, defaults.get(name))
        if value is not None:
            out.append((name, value))
    return out


@functools.cache
def keyed(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(name as sent, bare name) of each macro of a list (the lists are few:
    the configured ones and the filters' SETSYMLIST ones)."""
    return tuple(
        (name, name[1:-1] if name.startswith("{") and name.endswith("}") else name)
        for name in names
    )


def macro_data(
    event: bytes,
    names: tuple[str, ...],
    values: Mapping[str, str | None],
    defaults: Mapping[str, str],
) -> bytes:
    """SMFIC_MACRO data for ``event``: :func:`pairs` as NUL-terminated
    strings (:func:`mailhost.milter.wire.macro_data`), encoded at once."""
    found = pairs(names, values, defaults)
    if not found:
        return event
    text = "\0".join([f"{name}\0{value}" for name, value in found])
    return event + text.encode("utf-8", "surrogateescape") + b"\0"


def parse_defaults(value: str) -> dict[str, str]:
    """milter_macro_defaults: ``name=value`` elements (``{name}=value`` too)."""
    out: dict[str, str] = {}
    for element in split_list(value):
        item = element
        if item.startswith("{") and item.endswith("}") and "=" not in item[:2]:
            item = item[1:-1].strip()
        name, sep, val = item.partition("=")
        if not sep:
            continue
        name = name.strip()
        if name.startswith("{") and name.endswith("}"):
            name = name[1:-1]
        out[name] = val.strip()
    return out
