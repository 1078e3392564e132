"""Every main.cf parameter smtpd reads, read once into a frozen view.

One listener's Config (main.cf plus that master.cf line's ``-o`` overrides)
goes in, typed values come out; the session code never parses a string.  A
SIGHUP reload builds a new view and new sessions use it (sessions already
running keep theirs, as Postfix's smtpd processes do until they exit).

Network lists (``mynetworks``, ``smtpd_forbid_bare_newline_exclusions``)
are parsed by the resolver's
:class:`~mailhost.resolve.networks.NetworkList` (addresses, CIDR,
``[ipv6]``, ``/file``, ``!`` negation).  The anvil limits have their own view
(:class:`mailhost.smtpd.limits.LimitSettings`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.log import logger
from mailhost.resolve.networks import NetworkList

log = logger("smtpd")

TLS_LEVELS = ("none", "may", "encrypt")
BARE_NEWLINE_MODES = ("no", "normalize", "yes", "reject")


@dataclass(frozen=True)
class SmtpdSettings:
    myhostname: str
    mail_name: str
    banner: str
    helo_required: bool
    disable_vrfy: bool
    message_size_limit: int
    queue_minfree: int
    recipient_limit: int
    recipient_overshoot_limit: int
    timeout: float
    error_sleep_time: float
    soft_error_limit: int
    hard_error_limit: int
    junk_command_limit: int
    mynetworks: NetworkList
    line_length_limit: int
    smtputf8_enable: bool
    client_port_logging: bool
    forbid_bare_newline: str
    forbid_bare_newline_reject_code: int
    forbid_bare_newline_exclusions: NetworkList
    # TLS
    tls_security_level: str
    tls_cert_file: str
    tls_key_file: str
    tls_auth_only: bool
    tls_wrappermode: bool
    # SASL and sender ownership
    sasl_auth_enable: bool
    sasl_password_maps: str
    broken_sasl_auth_clients: bool
    recipient_delimiter: str
    # replies on their way out (mailhost.smtpd.footer)
    reject_footer: str = ""
    soft_bounce: bool = False
    #: smtpd_discard_ehlo_keywords, lowercased.
    discard_ehlo_keywords: frozenset[str] = frozenset()
    #: strict_rfc821_envelopes: MAIL FROM / RCPT TO paths must be in <>.
    strict_rfc821_envelopes: bool = False

    @classmethod
    def from_config(cls, cfg: Config) -> SmtpdSettings:
        level = cfg.get("smtpd_tls_security_level").strip().lower()
        if not level:
            # Postfix: the obsolete booleans apply when the level is not set.
            if cfg.get_bool("smtpd_enforce_tls"):
                level = "encrypt"
            elif cfg.get_bool("smtpd_use_tls"):
                level = "may"
            else:
                level = "none"
        if level not in TLS_LEVELS:
            log.warning("invalid smtpd_tls_security_level value: %s; using none", level)
            level = "none"
        bare = cfg.get("smtpd_forbid_bare_newline").strip().lower()
        if bare not in BARE_NEWLINE_MODES:
            log.warning("invalid smtpd_forbid_bare_newline value: %s; using normalize", bare)
            bare = "normalize"
        hard = cfg.get("smtpd_hard_error_limit").strip()
        junk = cfg.get("smtpd_junk_command_limit").strip()
        return cls(
            myhostname=cfg.get("myhostname"),
            mail_name=cfg.get("mail_name"),
            banner=cfg.get("smtpd_banner"),
            helo_required=cfg.get_bool("smtpd_helo_required"),
            strict_rfc821_envelopes=cfg.get_bool("strict_rfc821_envelopes"),
            disable_vrfy=cfg.get_bool("disable_vrfy_command"),
            message_size_limit=cfg.get_int("message_size_limit"),
            queue_minfree=cfg.get_int("queue_minfree"),
            recipient_limit=cfg.get_int("smtpd_recipient_limit"),
            recipient_overshoot_limit=cfg.get_int("smtpd_recipient_overshoot_limit"),
            timeout=cfg.get_time("smtpd_timeout"),
            error_sleep_time=cfg.get_time("smtpd_error_sleep_time"),
            soft_error_limit=cfg.get_int("smtpd_soft_error_limit"),
            hard_error_limit=int(hard) if hard.isdigit() else 20,
            junk_command_limit=int(junk) if junk.isdigit() else 100,
            mynetworks=NetworkList.parse("mynetworks", cfg.get("mynetworks")),
            line_length_limit=cfg.get_int("line_length_limit"),
            smtputf8_enable=cfg.get_bool("smtputf8_enable"),
            client_port_logging=cfg.get_bool("smtpd_client_port_logging"),
            forbid_bare_newline=bare,
            forbid_bare_newline_reject_code=cfg.get_int("smtpd_forbid_bare_newline_reject_code"),
            forbid_bare_newline_exclusions=NetworkList.parse(
                "smtpd_forbid_bare_newline_exclusions",
                cfg.get("smtpd_forbid_bare_newline_exclusions"),
            ),
            tls_security_level=level,
            tls_cert_file=cfg.get("smtpd_tls_cert_file"),
            tls_key_file=cfg.get("smtpd_tls_key_file"),
            tls_auth_only=cfg.get_bool("smtpd_tls_auth_only"),
            tls_wrappermode=cfg.get_bool("smtpd_tls_wrappermode"),
            sasl_auth_enable=cfg.get_bool("smtpd_sasl_auth_enable"),
            sasl_password_maps=cfg.get("mailhost_sasl_password_maps"),
            broken_sasl_auth_clients=cfg.get_bool("broken_sasl_auth_clients"),
            recipient_delimiter=cfg.get("recipient_delimiter"),
            reject_footer=cfg.raw("smtpd_reject_footer"),
            soft_bounce=cfg.get_bool("soft_bounce"),
            discard_ehlo_keywords=frozenset(
                word.lower() for word in split_list(cfg.get("smtpd_discard_ehlo_keywords"))
            ),
        )

    @property
    def offers_tls(self) -> bool:
        return self.tls_security_level != "none" or self.tls_wrappermode

    @property
    def requires_tls(self) -> bool:
        return self.tls_security_level == "encrypt"

    @property
    def auth_needs_tls(self) -> bool:
        """smtpd_tls_auth_only, which the encrypt level implies (postconf(5))."""
        return self.tls_auth_only or self.requires_tls
