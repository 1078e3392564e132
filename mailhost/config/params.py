"""Every main.cf parameter mailhost knows, declared once with its default and kind.

Defaults are Postfix 3.7.11's built-in values exactly as ``postconf -d`` prints
them (unexpanded), so ``mailhost postconf -d`` shows the same expressions.
Deliberate differences, each because mailhost is not Postfix:

* ``compatibility_level`` defaults to ``3.6`` (Postfix's built-in is 0; every
  Debian main.cf sets 3.6, and that is the behaviour administrators run);
* ``config_directory``, ``queue_directory``, ``data_directory``, ``mail_name``,
  ``mail_version`` and ``syslog_name`` name mailhost's own files and program;
* ``myhostname``, ``mydomain`` and ``mynetworks`` are computed from this host as
  Postfix computes them (see :mod:`mailhost.config.host`).

Parameters of mailhost's own start with ``mailhost_``.  Adding a parameter is
one line in :data:`PARAMETERS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from mailhost import __version__
from mailhost.config import host
from mailhost.errors import ConfigError


class Kind(Enum):
    STR = "string"
    BOOL = "boolean"
    INT = "integer"
    TIME = "time"


STR, BOOL, INT, TIME = Kind.STR, Kind.BOOL, Kind.INT, Kind.TIME


@dataclass(frozen=True)
class Param:
    name: str
    #: The default, or a function computing it from this host (called the
    #: first time the default is read, never at import).
    value: str | Callable[[], str]
    kind: Kind = Kind.STR
    #: For TIME parameters: the unit of a bare number (Postfix: the default's unit).
    unit: str = ""

    @property
    def default(self) -> str:
        return self.value() if callable(self.value) else self.value

    @property
    def time_unit(self) -> str:
        if self.unit:
            return self.unit
        last = self.default[-1:] if self.default else ""
        return last if last in _TIME_UNITS else "s"


_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

PARAMETERS: tuple[Param, ...] = (
    Param("2bounce_notice_recipient", "postmaster", STR),
    Param("access_map_defer_code", "450", INT),
    Param("access_map_reject_code", "554", INT),
    Param("alias_database", "hash:/etc/aliases", STR),
    Param("alias_maps", "hash:/etc/aliases, nis:mail.aliases", STR),
    Param("allow_mail_to_commands", "alias, forward", STR),
    Param("allow_mail_to_files", "alias, forward", STR),
    Param("allow_untrusted_routing", "no", BOOL),
    Param("allow_percent_hack", "yes", BOOL),
    Param("always_add_missing_headers", "no", BOOL),
    Param("append_at_myorigin", "yes", BOOL),
    Param("append_dot_mydomain", "${{$compatibility_level} <level {1} ? {yes} : {no}}", BOOL),
    Param("biff", "yes", BOOL),
    Param("body_checks", "", STR),
    Param("body_checks_size_limit", "51200", INT),
    Param("bounce_notice_recipient", "postmaster", STR),
    Param("bounce_queue_lifetime", "5d", TIME),
    Param("bounce_size_limit", "50000", INT),
    Param("broken_sasl_auth_clients", "no", BOOL),
    Param("canonical_maps", "", STR),
    Param(
        "canonical_classes",
        "envelope_sender, envelope_recipient, header_sender, header_recipient",
        STR,
    ),
    Param("command_directory", "/usr/sbin", STR),
    Param("command_time_limit", "1000s", TIME),
    Param("compatibility_level", "3.6", STR),
    Param("config_directory", "/etc/mailhost", STR),
    Param("content_filter", "", STR),
    Param("daemon_directory", "/usr/lib/postfix/sbin", STR),
    Param("data_directory", "/var/lib/mailhost", STR),
    Param("default_database_type", "hash", STR),
    Param("default_destination_concurrency_limit", "20", INT),
    Param("default_destination_recipient_limit", "50", INT),
    Param("default_privs", "nobody", STR),
    Param("default_process_limit", "100", INT),
    Param("default_transport", "smtp", STR),
    Param("defer_code", "450", INT),
    Param("delay_logging_resolution_limit", "2", INT),
    Param("delay_notice_recipient", "postmaster", STR),
    Param("delay_warning_time", "0h", TIME),
    Param("disable_dns_lookups", "no", BOOL),
    Param("disable_mime_input_processing", "no", BOOL),
    Param("disable_vrfy_command", "no", BOOL),
    Param("double_bounce_sender", "double-bounce", STR),
    Param("duplicate_filter_limit", "1000", INT),
    Param("empty_address_recipient", "MAILER-DAEMON", STR),
    Param("enable_long_queue_ids", "no", BOOL),
    Param("enable_original_recipient", "yes", BOOL),
    Param("error_notice_recipient", "postmaster", STR),
    Param("export_environment", "TZ MAIL_CONFIG LANG", STR),
    Param("fallback_transport", "", STR),
    Param("fast_flush_domains", "$relay_domains", STR),
    Param(
        "forward_expansion_filter",
        "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        STR,
    ),
    Param("forward_path", "$home/.forward${recipient_delimiter}${extension}, $home/.forward", STR),
    Param("hash_queue_depth", "1", INT),
    Param("hash_queue_names", "deferred, defer", STR),
    Param("header_checks", "", STR),
    Param("header_from_format", "standard", STR),
    Param("home_mailbox", "", STR),
    Param("html_directory", "/usr/share/doc/postfix/html", STR),
    Param("inet_interfaces", "all", STR),
    Param("inet_protocols", "all", STR),
    Param("lmtp_connect_timeout", "0s", TIME),
    Param("lmtp_host_lookup", "dns", STR),
    Param("lmtp_sasl_auth_enable", "no", BOOL),
    Param("lmtp_tls_security_level", "", STR),
    Param("local_header_rewrite_clients", "permit_inet_interfaces", STR),
    Param("local_recipient_maps", "proxy:unix:passwd.byname $alias_maps", STR),
    Param("local_transport", "local:$myhostname", STR),
    Param("luser_relay", "", STR),
    Param("mail_name", "mailhost", STR),
    Param("mail_owner", "postfix", STR),
    Param("mail_spool_directory", "/var/mail", STR),
    Param("mailbox_command", "", STR),
    Param("mailbox_delivery_lock", "fcntl, dotlock", STR),
    Param("mailbox_size_limit", "51200000", INT),
    Param("mailbox_transport", "", STR),
    Param("maillog_file", "", STR),
    Param("maillog_file_prefixes", "/var, /dev/stdout", STR),
    Param("mailq_path", "/usr/bin/mailq", STR),
    Param("manpage_directory", "/usr/share/man", STR),
    Param("maps_rbl_reject_code", "554", INT),
    Param("masquerade_domains", "", STR),
    Param("masquerade_classes", "envelope_sender, header_sender, header_recipient", STR),
    Param("masquerade_exceptions", "", STR),
    Param("maximal_backoff_time", "4000s", TIME),
    Param("maximal_queue_lifetime", "5d", TIME),
    Param("message_drop_headers", "bcc, content-length, resent-bcc, return-path", STR),
    Param("message_size_limit", "10240000", INT),
    Param("meta_directory", "/etc/postfix", STR),
    Param("milter_command_timeout", "30s", TIME),
    Param("milter_connect_macros", "j {daemon_name} {daemon_addr} v _", STR),
    Param("milter_connect_timeout", "30s", TIME),
    Param("milter_content_timeout", "300s", TIME),
    Param("milter_data_macros", "i", STR),
    Param("milter_default_action", "tempfail", STR),
    Param("milter_end_of_data_macros", "i", STR),
    Param("milter_end_of_header_macros", "i", STR),
    Param("milter_header_checks", "", STR),
    Param(
        "milter_helo_macros",
        "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
        STR,
    ),
    Param("milter_macro_daemon_name", "$myhostname", STR),
    Param("milter_macro_defaults", "", STR),
    Param("milter_macro_v", "$mail_name $mail_version", STR),
    Param(
        "milter_mail_macros",
        "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
        STR,
    ),
    Param("milter_protocol", "6", STR),
    Param("milter_rcpt_macros", "i {rcpt_addr} {rcpt_host} {rcpt_mailer}", STR),
    Param("milter_unknown_command_macros", "", STR),
    Param("mime_header_checks", "$header_checks", STR),
    Param("minimal_backoff_time", "300s", TIME),
    Param("mydestination", "$myhostname, localhost.$mydomain, localhost", STR),
    Param("mynetworks_style", "${{$compatibility_level} <level {2} ? {subnet} : {host}}", STR),
    Param("myorigin", "$myhostname", STR),
    Param("nested_header_checks", "$header_checks", STR),
    Param("newaliases_path", "/usr/bin/newaliases", STR),
    Param("non_fqdn_reject_code", "504", INT),
    Param("non_smtpd_milters", "", STR),
    Param("notify_classes", "resource, software", STR),
    Param("owner_request_special", "yes", BOOL),
    Param(
        "parent_domain_matches_subdomains",
        "debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,qmqpd_authorized_clients,relay_domains,smtpd_access_maps",
        STR,
    ),
    Param("permit_mx_backup_networks", "", STR),
    Param("propagate_unmatched_extensions", "canonical, virtual", STR),
    Param("proxy_interfaces", "", STR),
    Param("queue_directory", "/var/spool/mailhost", STR),
    Param("queue_minfree", "0", INT),
    Param("queue_run_delay", "300s", TIME),
    Param("readme_directory", "/usr/share/doc/postfix", STR),
    Param("receive_override_options", "", STR),
    Param("recipient_bcc_maps", "", STR),
    Param("recipient_canonical_maps", "", STR),
    Param("recipient_canonical_classes", "envelope_recipient, header_recipient", STR),
    Param("remote_header_rewrite_domain", "", STR),
    Param("recipient_delimiter", "", STR),
    Param("reject_code", "554", INT),
    Param("relay_domains", "${{$compatibility_level} <level {2} ? {$mydestination} : {}}", STR),
    Param("relay_domains_reject_code", "554", INT),
    Param("relay_recipient_maps", "", STR),
    Param("relay_transport", "relay", STR),
    Param("relayhost", "", STR),
    Param("sample_directory", "/etc/postfix", STR),
    Param("sender_bcc_maps", "", STR),
    Param("sender_canonical_maps", "", STR),
    Param("sender_canonical_classes", "envelope_sender, header_sender", STR),
    Param("sendmail_path", "/usr/sbin/sendmail", STR),
    Param("setgid_group", "postdrop", STR),
    Param("shlib_directory", "/usr/lib/postfix", STR),
    Param("show_user_unknown_table_name", "yes", BOOL),
    Param("smtp_bind_address", "", STR),
    Param("smtp_connect_timeout", "30s", TIME),
    Param("smtp_data_done_timeout", "600s", TIME),
    Param("smtp_data_init_timeout", "120s", TIME),
    Param("smtp_data_xfer_timeout", "180s", TIME),
    Param("smtp_generic_maps", "", STR),
    Param("lmtp_generic_maps", "", STR),
    Param("smtp_helo_timeout", "300s", TIME),
    Param("smtp_host_lookup", "dns", STR),
    Param("smtp_mail_timeout", "300s", TIME),
    Param("smtp_quit_timeout", "300s", TIME),
    Param("smtp_rcpt_timeout", "300s", TIME),
    Param("smtp_sasl_auth_enable", "no", BOOL),
    Param("smtp_sasl_password_maps", "", STR),
    Param("smtp_sasl_security_options", "noplaintext, noanonymous", STR),
    Param("smtp_tls_CAfile", "", STR),
    Param("smtp_tls_CApath", "", STR),
    Param("smtp_tls_cert_file", "", STR),
    Param("smtp_tls_ciphers", "medium", STR),
    Param("smtp_tls_key_file", "$smtp_tls_cert_file", STR),
    Param("smtp_tls_loglevel", "0", INT),
    Param("smtp_tls_mandatory_protocols", ">=TLSv1", STR),
    Param("smtp_tls_protocols", ">=TLSv1", STR),
    Param("smtp_tls_security_level", "", STR),
    Param("smtp_tls_session_cache_database", "", STR),
    # smtp(8) / lmtp(8): outbound delivery (mailhost.qmgr.smtp).
    Param("smtp_helo_name", "$myhostname", STR),
    Param("smtp_tcp_port", "smtp", STR),
    Param("smtp_mx_address_limit", "5", INT),
    Param("smtp_mx_session_limit", "2", INT),
    Param("smtp_randomize_addresses", "yes", BOOL),
    Param("smtp_skip_5xx_greeting", "yes", BOOL),
    Param("smtp_starttls_timeout", "300s", TIME),
    Param("smtp_rset_timeout", "20s", TIME),
    Param("smtp_sasl_tls_security_options", "$smtp_sasl_security_options", STR),
    Param("lmtp_sasl_security_options", "noplaintext, noanonymous", STR),
    Param("lmtp_sasl_tls_security_options", "$lmtp_sasl_security_options", STR),
    Param("smtp_use_tls", "no", BOOL),
    Param("smtp_enforce_tls", "no", BOOL),
    Param("smtp_connection_cache_time_limit", "2s", TIME),
    Param("smtp_connection_reuse_time_limit", "300s", TIME),
    Param("smtp_destination_concurrency_limit", "$default_destination_concurrency_limit", INT),
    Param("smtp_destination_recipient_limit", "$default_destination_recipient_limit", INT),
    Param("relay_destination_concurrency_limit", "$default_destination_concurrency_limit", INT),
    Param("relay_destination_recipient_limit", "$default_destination_recipient_limit", INT),
    Param("lmtp_lhlo_name", "$myhostname", STR),
    Param("lmtp_tcp_port", "24", STR),
    Param("lmtp_mx_address_limit", "5", INT),
    Param("lmtp_mx_session_limit", "2", INT),
    Param("lmtp_randomize_addresses", "yes", BOOL),
    Param("lmtp_skip_5xx_greeting", "yes", BOOL),
    Param("lmtp_lhlo_timeout", "300s", TIME),
    Param("lmtp_mail_timeout", "300s", TIME),
    Param("lmtp_rcpt_timeout", "300s", TIME),
    Param("lmtp_data_init_timeout", "120s", TIME),
    Param("lmtp_data_xfer_timeout", "180s", TIME),
    Param("lmtp_data_done_timeout", "600s", TIME),
    Param("lmtp_quit_timeout", "300s", TIME),
    Param("lmtp_rset_timeout", "20s", TIME),
    Param("lmtp_starttls_timeout", "300s", TIME),
    Param("lmtp_use_tls", "no", BOOL),
    Param("lmtp_enforce_tls", "no", BOOL),
    Param("lmtp_tls_CAfile", "", STR),
    Param("lmtp_tls_cert_file", "", STR),
    Param("lmtp_tls_key_file", "$lmtp_tls_cert_file", STR),
    Param("lmtp_sasl_password_maps", "", STR),
    Param("lmtp_connection_cache_time_limit", "2s", TIME),
    Param("lmtp_connection_reuse_time_limit", "300s", TIME),
    Param("lmtp_destination_concurrency_limit", "$default_destination_concurrency_limit", INT),
    Param("lmtp_destination_recipient_limit", "$default_destination_recipient_limit", INT),
    # DNS servers for smtp(8)'s MX/A/AAAA lookups ("host" or "host:port";
    # empty: the system resolver configuration).
    Param("mailhost_dns_servers", "", STR),
    Param("smtpd_authorized_xclient_hosts", "", STR),
    Param("smtpd_banner", "$myhostname ESMTP $mail_name", STR),
    Param("smtpd_client_connection_count_limit", "50", INT),
    # anvil(8) rate limits (mailhost.smtpd.limits; 0: no limit).
    Param("smtpd_client_connection_rate_limit", "0", INT),
    Param("smtpd_client_message_rate_limit", "0", INT),
    Param("smtpd_client_recipient_rate_limit", "0", INT),
    Param("smtpd_client_new_tls_session_rate_limit", "0", INT),
    Param("smtpd_client_auth_rate_limit", "0", INT),
    Param("anvil_rate_time_unit", "60s", TIME),
    Param("anvil_status_update_time", "600s", TIME),
    Param("smtpd_junk_command_limit", "${stress?{1}:{100}}", STR),
    Param("smtpd_client_port_logging", "no", BOOL),
    Param("smtpd_client_restrictions", "", STR),
    Param("smtpd_data_restrictions", "", STR),
    Param("smtpd_delay_reject", "yes", BOOL),
    Param("smtpd_discard_ehlo_keywords", "", STR),
    Param("smtpd_end_of_data_restrictions", "", STR),
    Param("smtpd_enforce_tls", "no", BOOL),
    Param("smtpd_error_sleep_time", "1s", TIME),
    Param("smtpd_etrn_restrictions", "", STR),
    Param("smtpd_forbid_bare_newline", "no", STR),
    Param("smtpd_forbid_bare_newline_exclusions", "$mynetworks", STR),
    Param("smtpd_forbid_bare_newline_reject_code", "550", INT),
    Param("smtpd_hard_error_limit", "${stress?{1}:{20}}", STR),
    Param("smtpd_helo_required", "no", BOOL),
    Param("smtpd_helo_restrictions", "", STR),
    Param("smtpd_milters", "", STR),
    Param("smtpd_min_data_rate", "500", INT),
    Param(
        "smtpd_per_request_deadline",
        "${smtpd_per_record_deadline?{$smtpd_per_record_deadline}:{${stress?{yes}:{no}}}}",
        BOOL,
    ),
    # Postfix 2.9-3.6's name, still read by smtpd_per_request_deadline's
    # default; postconf 3.7 knows it with an empty default (not listed by -d).
    Param("smtpd_per_record_deadline", "", STR),
    Param("smtpd_policy_service_default_action", "451 4.3.5 Server configuration problem"),
    Param("smtpd_policy_service_max_idle", "300s", TIME),
    Param("smtpd_policy_service_max_ttl", "1000s", TIME),
    Param("smtpd_policy_service_policy_context", ""),
    Param("smtpd_policy_service_request_limit", "0", INT),
    Param("smtpd_policy_service_retry_delay", "1s", TIME),
    Param("smtpd_policy_service_timeout", "100s", TIME),
    Param("smtpd_policy_service_try_limit", "2", INT),
    Param("smtpd_proxy_filter", "", STR),
    Param("smtpd_recipient_limit", "1000", INT),
    Param("smtpd_recipient_overshoot_limit", "1000", INT),
    Param("smtpd_recipient_restrictions", "", STR),
    Param("smtpd_reject_unlisted_recipient", "yes", BOOL),
    Param("smtpd_reject_unlisted_sender", "no", BOOL),
    Param(
        "smtpd_relay_before_recipient_restrictions",
        "${{$compatibility_level} <level {3.6} ? {no} : {yes}}",
        BOOL,
    ),
    Param(
        "smtpd_relay_restrictions",
        "${{$compatibility_level} <level {1} ? {} : {permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination}}",
        STR,
    ),
    Param("smtpd_sasl_auth_enable", "no", BOOL),
    Param("smtpd_sasl_authenticated_header", "no", BOOL),
    Param("smtpd_sasl_local_domain", "", STR),
    Param("smtpd_sasl_path", "smtpd", STR),
    Param("smtpd_sasl_security_options", "noanonymous", STR),
    Param("smtpd_sasl_type", "cyrus", STR),
    Param("smtpd_sender_login_maps", "", STR),
    Param("smtpd_sender_restrictions", "", STR),
    Param("smtpd_soft_error_limit", "10", INT),
    Param("smtpd_timeout", "${stress?{10}:{300}}s", TIME),
    Param("smtpd_tls_CAfile", "", STR),
    Param("smtpd_tls_CApath", "", STR),
    Param("smtpd_tls_auth_only", "no", BOOL),
    Param("smtpd_tls_cert_file", "", STR),
    Param("smtpd_tls_chain_files", "", STR),
    Param("smtpd_tls_ciphers", "medium", STR),
    Param("smtpd_tls_dh1024_param_file", "", STR),
    Param("smtpd_tls_eecdh_grade", "auto", STR),
    Param("smtpd_tls_exclude_ciphers", "", STR),
    Param("smtpd_tls_key_file", "$smtpd_tls_cert_file", STR),
    Param("smtpd_tls_loglevel", "0", INT),
    Param("smtpd_tls_mandatory_ciphers", "medium", STR),
    Param("smtpd_tls_mandatory_protocols", ">=TLSv1", STR),
    Param("smtpd_tls_protocols", ">=TLSv1", STR),
    Param("smtpd_tls_received_header", "no", BOOL),
    Param("smtpd_tls_security_level", "", STR),
    Param("smtpd_tls_session_cache_database", "", STR),
    Param("smtpd_tls_wrappermode", "no", BOOL),
    Param("smtpd_use_tls", "no", BOOL),
    Param("smtputf8_enable", "${{$compatibility_level} <level {1} ? {no} : {yes}}", BOOL),
    Param("smtpd_restriction_classes", "", STR),
    Param("smtpd_reject_footer", "", STR),
    Param("smtpd_null_access_lookup_key", "<>", STR),
    Param("smtpd_log_access_permit_actions", "", STR),
    Param("invalid_hostname_reject_code", "501", INT),
    Param("unknown_client_reject_code", "450", INT),
    Param("plaintext_reject_code", "450", INT),
    Param("multi_recipient_bounce_reject_code", "550", INT),
    Param("reject_tempfail_action", "defer_if_permit", STR),
    Param("unknown_helo_hostname_tempfail_action", "$reject_tempfail_action", STR),
    Param("unknown_address_tempfail_action", "$reject_tempfail_action", STR),
    Param("rbl_reply_maps", "", STR),
    Param(
        "default_rbl_reply",
        "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using "
        "$rbl_domain${rbl_reason?; $rbl_reason}",
        STR,
    ),
    Param("strict_rfc821_envelopes", "no", BOOL),
    Param("soft_bounce", "no", BOOL),
    Param("strict_mailbox_ownership", "yes", BOOL),
    Param("swap_bangpath", "yes", BOOL),
    Param("syslog_facility", "mail", STR),
    Param("syslog_name", "mailhost", STR),
    Param("tls_preempt_cipherlist", "no", BOOL),
    Param("transport_maps", "", STR),
    Param("unknown_address_reject_code", "450", INT),
    Param("unknown_hostname_reject_code", "450", INT),
    Param("unknown_local_recipient_reject_code", "550", INT),
    Param("unknown_relay_recipient_reject_code", "550", INT),
    Param("unknown_virtual_alias_reject_code", "550", INT),
    Param("unknown_virtual_mailbox_reject_code", "550", INT),
    Param("unverified_recipient_reject_code", "450", INT),
    Param("virtual_alias_address_length_limit", "1000", INT),
    Param("virtual_alias_domains", "$virtual_alias_maps", STR),
    Param("virtual_alias_expansion_limit", "1000", INT),
    Param("virtual_alias_maps", "$virtual_maps", STR),
    Param("virtual_alias_recursion_limit", "1000", INT),
    Param("virtual_destination_recipient_limit", "$default_destination_recipient_limit", STR),
    Param("virtual_gid_maps", "", STR),
    Param("virtual_mailbox_base", "", STR),
    Param("virtual_mailbox_domains", "$virtual_mailbox_maps", STR),
    Param("virtual_mailbox_limit", "51200000", INT),
    Param("virtual_mailbox_lock", "fcntl, dotlock", STR),
    Param("virtual_mailbox_maps", "", STR),
    Param("virtual_maps", "", STR),
    Param("virtual_minimum_uid", "100", INT),
    Param("virtual_transport", "virtual", STR),
    Param("virtual_uid_maps", "", STR),
    # Computed from this host, as Postfix computes them.
    Param("myhostname", host.default_myhostname),
    Param("mydomain", host.default_mydomain),
    Param("mynetworks", host.default_mynetworks),
    Param("mail_version", __version__),
    Param("stress", ""),
    # mailhost's own parameters.
    Param("mailhost_database_url", "sqlite:///$data_directory/mailhost.sqlite"),
    Param("mailhost_table_cache_ttl", "10s", TIME),
    Param("mailhost_table_negative_cache_ttl", "$mailhost_table_cache_ttl", TIME, unit="s"),
    Param("mailhost_sql_connect_timeout", "5s", TIME),
    Param("mailhost_sql_query_timeout", "5s", TIME),
    Param("mailhost_metrics_listen", "", STR),
    # The node label of every /metrics series and the node of `mailhost status` (docs/operations.md).
    Param("mailhost_node_name", "$myhostname", STR),
    Param("mailhost_sql_pool_size", "4", INT),
    # mailhost serve: worker processes sharing the listening ports; 0 = one
    # per CPU the process may run on (prefork.worker_processes).
    Param("mailhost_worker_processes", "0", INT),
    # The per-mailbox quota map of the widely used VDA patch (bytes, 0 = unlimited).
    Param("virtual_mailbox_limit_maps", ""),
    # Per-mailbox quota enforcement (mailhost/quota, docs/quota.md).
    Param("mailhost_quota_domain_maps", ""),
    Param("mailhost_quota_overquota_bounce", "yes", BOOL),
    Param("mailhost_quota_grace", "0"),
    Param("mailhost_quota_warning_thresholds", ""),
    Param("mailhost_quota_status_overquota", "554 5.2.2 Quota exceeded (mailbox for user is full)"),
    Param("mailhost_quota_status_toolarge", ""),
    Param("mailhost_quota_status_success", "DUNNO"),
    Param("mailhost_quota_status_nouser", "REJECT Unknown user"),
    # check_store_quota_service (mailhost.smtpd_check.store_quota, docs/cluster.md)
    Param("mailhost_store_quota_service_port", "12340", INT),
    Param("mailhost_store_quota_service_default_action", "DUNNO"),
    Param("mailhost_virtual_shared_copies", "no", BOOL),
    Param("mailhost_inline_delivery", "yes", BOOL),
    Param("line_length_limit", "2048", INT),
    Param("header_size_limit", "102400", INT),
    Param("smtpd_client_connection_limit_exceptions", "", STR),
    Param(
        "smtpd_client_event_limit_exceptions",
        "${smtpd_client_connection_limit_exceptions:$mynetworks}",
        STR,
    ),
    Param("mailhost_sasl_password_maps", "", STR),
    # PostfixAdmin coexistence (docs/postfixadmin.md): each mirrors a $CONF setting.
    Param("mailhost_password_format", "dovecot:SHA512-CRYPT", STR),
    Param("mailhost_password_authlib_flavor", "md5raw", STR),
    Param("mailhost_password_accept_weak", "no", BOOL),
    Param("mailhost_password_expiration", "yes", BOOL),
    Param("mailhost_quota_multiplier", "1024000", INT),
    Param("mailhost_postfixadmin_log", "yes", BOOL),
)

BY_NAME: dict[str, Param] = {p.name: p for p in PARAMETERS}


def parse_bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered == "yes":
        return True
    if lowered == "no":
        return False
    raise ConfigError(f"bad boolean configuration: {name} = {value}")


def parse_int(name: str, value: str) -> int:
    if not re.fullmatch(r"-?\d+", value.strip()):
        raise ConfigError(f"bad numerical configuration: {name} = {value}")
    return int(value)


def parse_time(name: str, value: str, default_unit: str) -> float:
    """Postfix time values: digits and an optional unit; only the first
    character after the digits is examined (``5days`` is 5d)."""
    m = re.fullmatch(r"(\d+)([A-Za-z]?)[A-Za-z]*", value.strip())
    unit = (m.group(2) if m else "").lower() or default_unit
    if not m or unit not in _TIME_UNITS:
        raise ConfigError(f"parameter {name}: bad time value or unit: {value}")
    return float(int(m.group(1)) * _TIME_UNITS[unit])


def validate(param: Param, value: str) -> None:
    """Raise ConfigError with Postfix's text when an expanded value is not of
    the parameter's kind."""
    if param.kind is BOOL:
        parse_bool(param.name, value)
    elif param.kind is INT:
        parse_int(param.name, value)
    elif param.kind is TIME:
        parse_time(param.name, value, param.time_unit)
