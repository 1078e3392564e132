"""The DNS restriction cases shared by record_postfix_dns.py (which plays them
against a real Postfix 3.7.11) and test_dns_restrictions_match_postfix.py
(which plays them against mailhost's restriction engine).

Every case is one SMTP session on one listener: the client it poses as
(XCLIENT ADDR, NAME, REVERSE_NAME), its HELO name, sender and recipient; what
is recorded is the RCPT reply and the smtpd log lines of the session.  The
DNS answers come from :data:`ZONE` on the loopback DNS server
(tests/smtp/dnsserver.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.smtp.dnsserver import Zone

#: (name, type, value) of the zone; ``SERVFAIL`` names answer SERVFAIL.
RECORDS = (
    # DNS deny lists: bl.test, rbl2.test (reply template), badtpl.test, badcode.test
    ("2.0.0.127.bl.test", "A", "127.0.0.2"),
    ("2.0.0.127.bl.test", "TXT", '"Listed, see http://bl.test/q?127.0.0.2"'),
    ("3.0.0.127.bl.test", "A", "127.0.0.10"),
    ("4.0.0.127.bl.test", "A", "127.0.0.4"),
    ("4.0.0.127.bl.test", "A", "127.0.0.11"),
    # Two TXT records (in any order), of which only the first string counts.
    ("4.0.0.127.bl.test", "TXT", '"same" " first"'),
    ("4.0.0.127.bl.test", "TXT", '"same" " second"'),
    ("2.2.0.192.rbl2.test", "A", "127.0.0.2"),
    ("2.2.0.192.rbl2.test", "TXT", '"rbl2 says no"'),
    ("3.2.0.192.rbl2.test", "A", "127.0.0.2"),
    ("4.2.0.192.badtpl.test", "A", "127.0.0.2"),
    ("5.2.0.192.badcode.test", "A", "127.0.0.2"),
    # right-hand side lists
    ("spammer.test.rhs.test", "A", "127.0.0.2"),
    ("spammer.test.rhs.test", "TXT", '"domain of spammers"'),
    ("badhelo.test.rhs.test", "A", "127.0.0.2"),
    ("client.spammer.test.rhs.test", "A", "127.0.0.3"),
    ("reverse.spammer.test.rhs.test", "A", "127.0.0.4"),
    ("junk.test.rhs.test", "A", "127.0.0.5"),
    # allow lists
    ("5.0.0.127.wl.test", "A", "127.0.0.2"),
    ("good.test.rhswl.test", "A", "127.0.0.2"),
    # names that exist, or not
    ("exists.test", "A", "127.0.0.30"),
    ("helo.exists.test", "A", "127.0.0.31"),
    ("mxonly.test", "MX", "10 helo.exists.test."),
    ("v6only.test", "AAAA", "::1"),
    ("nodata.test", "TXT", '"no address here"'),
    ("nullmx.test", "MX", "0 ."),
    ("malformed.test", "MX", "10 -bad-.malformed.test."),
    # servers for check_*_{mx,ns,a}_access
    ("mxbad.test", "MX", "10 mx.spamhost.test."),
    ("mx.spamhost.test", "A", "127.0.0.50"),
    ("mxaddr.test", "MX", "10 mx.other.test."),
    ("mx.other.test", "A", "127.0.0.51"),
    ("mxok.test", "MX", "10 trusted.test."),
    ("trusted.test", "A", "127.0.0.52"),
    ("nsbad.test", "NS", "ns1.spamhost.test."),
    ("ns1.spamhost.test", "A", "127.0.0.53"),
    ("nsparent.test", "NS", "ns2.spamhost.test."),
    ("sub.nsparent.test", "A", "127.0.0.54"),
    ("abad.test", "A", "127.0.0.51"),
    ("nohostaddr.test", "MX", "10 missing.nohostaddr.test."),
    ("nohostaddr.test", "TXT", '"the MX host has no address"'),
    # permit_mx_backup
    ("backup.test", "MX", "10 primary.test."),
    ("backup.test", "MX", "20 me.test."),
    ("primary.test", "A", "127.0.0.60"),
    ("me.test", "A", "127.0.0.1"),
    ("iamprimary.test", "MX", "10 me.test."),
    ("backup2.test", "MX", "10 primary2.test."),
    ("backup2.test", "MX", "20 me.test."),
    ("primary2.test", "A", "127.0.0.61"),
    ("notme.test", "MX", "10 primary.test."),
)

SERVFAIL = (
    "2.0.0.127.broken.test",
    "6.0.0.127.wl.test",
    "tempfail.test",
    "helo.tempfail.test",
    "mxfail.test",
)


def zone() -> Zone:
    zone = Zone()
    for name, rdtype, value in RECORDS:
        zone.add(name, rdtype, value)
    for name in SERVFAIL:
        zone.servfail.add(name.lower() + ".")
    return zone


#: main.cf of the recording instance and of mailhost (plus each listener's overrides).
MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
virtual_mailbox_domains = example.com
virtual_mailbox_maps = static:yes
smtpd_reject_unlisted_recipient = no
rbl_reply_maps = texthash:{d}/rbl_reply
"""

RBL_REPLY = """\
bl.test=127.0.0.10 $rbl_code 5.7.9 Custom: $client_address ($client_name) listed by $rbl_domain; helo=$helo_name
rbl2.test 550 ${rbl_reason:no reason given} for $sender_domain to $recipient_name via $rbl_class
badtpl.test 550 listed by $rbl_domain $no_such_macro
badcode.test 250 listed by $rbl_domain
"""

SERVER_ACCESS = """\
spamhost.test REJECT server of a spam host
127.0.0.51 554 5.7.2 server address listed
trusted.test OK
"""


def write_files(directory: Path) -> None:
    (directory / "rbl_reply").write_text(RBL_REPLY)
    (directory / "server_access").write_text(SERVER_ACCESS)


_SA = "texthash:{d}/server_access"

#: listener name → its -o overrides ({d}: the instance directory).
LISTENERS: dict[str, dict[str, str]] = {
    "rbl": {"smtpd_recipient_restrictions": "reject_rbl_client bl.test"},
    "rbl_filter": {"smtpd_recipient_restrictions": "reject_rbl_client bl.test=127.0.0.[2..9]"},
    "rbl_filter_list": {
        "smtpd_recipient_restrictions": "reject_rbl_client bl.test=127.0.0.[3;10..11]"
    },
    "rbl_map": {"smtpd_recipient_restrictions": "reject_rbl_client bl.test=127.0.0.10"},
    "rbl_broken": {"smtpd_recipient_restrictions": "reject_rbl_client broken.test, reject"},
    "lists": {
        "smtpd_recipient_restrictions": (
            "reject_rbl_client rbl2.test, reject_rbl_client badtpl.test, "
            "reject_rbl_client badcode.test, reject_rhsbl_sender rhs.test, "
            "reject_rhsbl_helo rhs.test, reject_rhsbl_client rhs.test, "
            "reject_rhsbl_reverse_client rhs.test, reject_rhsbl_recipient rhs.test"
        )
    },
    "rbl_code": {
        "smtpd_recipient_restrictions": "reject_rbl_client bl.test",
        "maps_rbl_reject_code": "521",
    },
    "allow": {
        "smtpd_recipient_restrictions": (
            "permit_dnswl_client wl.test, permit_rhswl_client rhswl.test, reject"
        ),
        "smtpd_log_access_permit_actions": "static:all",
    },
    "unknown": {
        "smtpd_relay_restrictions": (
            "reject_unknown_recipient_domain, permit_auth_destination, reject_unauth_destination"
        ),
        "smtpd_recipient_restrictions": (
            "reject_unknown_helo_hostname, reject_unknown_sender_domain, permit"
        ),
    },
    "unknown_defer": {
        "smtpd_recipient_restrictions": (
            "reject_unknown_helo_hostname, reject_unknown_sender_domain, permit"
        ),
        "unknown_address_tempfail_action": "defer",
        "unknown_helo_hostname_tempfail_action": "defer",
    },
    "unknown_codes": {
        "smtpd_recipient_restrictions": (
            "reject_unknown_helo_hostname, reject_unknown_sender_domain"
        ),
        "unknown_address_reject_code": "550",
        "unknown_hostname_reject_code": "554",
    },
    "sender_mx": {"smtpd_recipient_restrictions": "check_sender_mx_access " + _SA},
    "sender_ns": {"smtpd_recipient_restrictions": "check_sender_ns_access " + _SA},
    "sender_a": {"smtpd_recipient_restrictions": "check_sender_a_access " + _SA},
    "helo_mx": {"smtpd_recipient_restrictions": "check_helo_mx_access " + _SA},
    "client_a": {"smtpd_recipient_restrictions": "check_client_a_access " + _SA},
    "reverse_ns": {
        "smtpd_recipient_restrictions": "check_reverse_client_hostname_ns_access " + _SA
    },
    "misnamed": {"smtpd_recipient_restrictions": "check_reverse_client_ns_access " + _SA},
    "recipient_mx": {
        "smtpd_relay_restrictions": (
            "check_recipient_mx_access " + _SA + ", reject_unauth_destination"
        ),
    },
    "mx_backup": {
        "smtpd_relay_restrictions": "permit_mx_backup, reject_unauth_destination",
        "smtpd_log_access_permit_actions": "static:all",
    },
    "mx_backup_networks": {
        "smtpd_relay_restrictions": "permit_mx_backup, reject_unauth_destination",
        "permit_mx_backup_networks": "127.0.0.60/32",
    },
}


@dataclass(frozen=True)
class Case:
    listener: str
    address: str = "192.0.2.1"
    #: XCLIENT NAME (``[UNAVAILABLE]``, ``[TEMPUNAVAIL]`` or a host name).
    name: str = "[UNAVAILABLE]"
    #: XCLIENT REVERSE_NAME, when it differs from NAME.
    reverse_name: str | None = None
    helo: str = "helo.exists.test"
    sender: str = "sender@exists.test"
    recipient: str = "user@example.com"


CASES: dict[str, Case] = {
    # reject_rbl_client
    "rbl_listed_with_txt": Case("rbl", "127.0.0.2"),
    "rbl_listed_without_txt": Case("rbl", "127.0.0.3"),
    "rbl_listed_two_txt": Case("rbl", "127.0.0.4"),
    "rbl_not_listed": Case("rbl", "127.0.0.9"),
    "rbl_client_name_in_reply": Case("rbl", "127.0.0.2", name="host.exists.test"),
    "rbl_maps_rbl_reject_code": Case("rbl_code", "127.0.0.2"),
    "rbl_filter_range_matches": Case("rbl_filter", "127.0.0.2"),
    "rbl_filter_range_misses": Case("rbl_filter", "127.0.0.3"),
    "rbl_filter_one_of_two_records": Case("rbl_filter", "127.0.0.4"),
    "rbl_filter_list_matches": Case("rbl_filter_list", "127.0.0.3"),
    "rbl_filter_list_misses": Case("rbl_filter_list", "127.0.0.2"),
    "rbl_reply_maps_with_filter_key": Case("rbl_map", "127.0.0.3"),
    "rbl_servfail_is_skipped": Case("rbl_broken", "127.0.0.2"),
    "rbl_reply_maps_template": Case("lists", "192.0.2.2", sender="someone@exists.test"),
    "rbl_reply_maps_template_no_reason": Case("lists", "192.0.2.3"),
    "rbl_reply_maps_bad_template": Case("lists", "192.0.2.4"),
    "rbl_reply_maps_bad_code": Case("lists", "192.0.2.5"),
    # right-hand side lists
    "rhsbl_sender": Case("lists", sender="user@spammer.test"),
    "rhsbl_sender_numeric_suffix": Case("lists", sender="user@spammer.123"),
    "rhsbl_sender_literal": Case("lists", sender="user@[192.0.2.9]"),
    "rhsbl_helo": Case("lists", helo="badhelo.test"),
    "rhsbl_client": Case("lists", name="client.spammer.test"),
    "rhsbl_client_unknown": Case("lists", name="[UNAVAILABLE]"),
    "rhsbl_reverse_client": Case(
        "lists", name="[UNAVAILABLE]", reverse_name="reverse.spammer.test"
    ),
    "rhsbl_recipient": Case("lists", recipient="user@junk.test"),
    # allow lists
    "dnswl_listed_permits": Case("allow", "127.0.0.5"),
    "dnswl_not_listed": Case("allow", "127.0.0.7"),
    "dnswl_servfail_defers_the_reject": Case("allow", "127.0.0.6"),
    "dnswl_unauthorized_recipient": Case("allow", "127.0.0.5", recipient="user@elsewhere.test"),
    "rhswl_listed_permits": Case("allow", name="good.test"),
    "rhswl_unknown_client": Case("allow", name="[UNAVAILABLE]"),
    # reject_unknown_*
    "unknown_all_known": Case("unknown"),
    "unknown_helo_not_found": Case("unknown", helo="nowhere.test"),
    "unknown_helo_aaaa_only": Case("unknown", helo="v6only.test"),
    "unknown_helo_mx_only": Case("unknown", helo="mxonly.test"),
    "unknown_helo_null_mx": Case("unknown", helo="nullmx.test"),
    "unknown_helo_tempfail": Case("unknown", helo="helo.tempfail.test"),
    "unknown_helo_literal": Case("unknown", helo="[192.0.2.1]"),
    "unknown_helo_bad_literal": Case("unknown", helo="[192.0.2.300]"),
    "unknown_sender_not_found": Case("unknown", sender="user@nowhere.test"),
    "unknown_sender_nodata": Case("unknown", sender="user@nodata.test"),
    "unknown_sender_mx_only": Case("unknown", sender="user@mxonly.test"),
    "unknown_sender_null_mx": Case("unknown", sender="user@nullmx.test"),
    "unknown_sender_malformed_mx": Case("unknown", sender="user@malformed.test"),
    "unknown_sender_tempfail": Case("unknown", sender="user@tempfail.test"),
    "unknown_sender_final_domain": Case("unknown", sender="user@example.com"),
    "unknown_sender_literal": Case("unknown", sender="user@[192.0.2.1]"),
    "unknown_sender_null": Case("unknown", sender=""),
    "unknown_recipient_not_found": Case("unknown", recipient="user@nowhere.test"),
    "unknown_recipient_null_mx": Case("unknown", recipient="user@nullmx.test"),
    "unknown_recipient_tempfail": Case("unknown", recipient="user@tempfail.test"),
    "unknown_defer_sender_tempfail": Case("unknown_defer", sender="user@tempfail.test"),
    "unknown_defer_helo_tempfail": Case("unknown_defer", helo="helo.tempfail.test"),
    "unknown_codes_sender": Case("unknown_codes", sender="user@nowhere.test"),
    "unknown_codes_helo": Case("unknown_codes", helo="nowhere.test"),
    # check_*_{mx,ns,a}_access
    "sender_mx_host_name": Case("sender_mx", sender="user@mxbad.test"),
    "sender_mx_host_address": Case("sender_mx", sender="user@mxaddr.test"),
    "sender_mx_ok_is_refused": Case("sender_mx", sender="user@mxok.test"),
    "sender_mx_no_mx_is_own_server": Case("sender_mx", sender="user@abad.test"),
    "sender_mx_null_mx": Case("sender_mx", sender="user@nullmx.test"),
    "sender_mx_tempfail": Case("sender_mx", sender="user@tempfail.test"),
    "sender_mx_host_without_address": Case("sender_mx", sender="user@nohostaddr.test"),
    "sender_mx_literal": Case("sender_mx", sender="user@[127.0.0.51]"),
    "sender_mx_clean": Case("sender_mx", sender="user@mxonly.test"),
    "sender_ns_host_name": Case("sender_ns", sender="user@nsbad.test"),
    "sender_ns_parent_domain": Case("sender_ns", sender="user@sub.nsparent.test"),
    "sender_ns_not_found": Case("sender_ns", sender="user@nowhere.test"),
    "sender_a_address": Case("sender_a", sender="user@abad.test"),
    "sender_a_literal": Case("sender_a", sender="user@[127.0.0.51]"),
    "sender_a_not_found": Case("sender_a", sender="user@nowhere.test"),
    "helo_mx_host_name": Case("helo_mx", helo="mxbad.test"),
    "client_a_address": Case("client_a", name="abad.test"),
    "client_a_unknown": Case("client_a", name="[UNAVAILABLE]"),
    "reverse_client_ns": Case("reverse_ns", name="[UNAVAILABLE]", reverse_name="nsbad.test"),
    "misnamed_restriction": Case("misnamed"),
    "recipient_mx_host_name": Case("recipient_mx", recipient="user@mxbad.test"),
    # permit_mx_backup
    "mx_backup_permits": Case("mx_backup", recipient="user@backup.test"),
    "mx_backup_primary_is_me": Case("mx_backup", recipient="user@iamprimary.test"),
    "mx_backup_not_listed": Case("mx_backup", recipient="user@notme.test"),
    "mx_backup_tempfail": Case("mx_backup", recipient="user@mxfail.test"),
    "mx_backup_final_domain": Case("mx_backup", recipient="user@example.com"),
    "mx_backup_networks_match": Case("mx_backup_networks", recipient="user@backup.test"),
    "mx_backup_networks_miss": Case("mx_backup_networks", recipient="user@backup2.test"),
}


def overrides(listener: str, directory: Path) -> dict[str, str]:
    return {k: v.format(d=directory) for k, v in LISTENERS[listener].items()}


#: The client's own name lookup (smtpd_peer.c): connections from these
#: loopback addresses, without XCLIENT, to the PEER_LISTENERS.
PEER_RECORDS = (
    ("20.0.0.127.in-addr.arpa", "PTR", "good.peer.test."),
    ("good.peer.test", "A", "127.0.0.20"),
    ("21.0.0.127.in-addr.arpa", "PTR", "forged.peer.test."),
    ("forged.peer.test", "A", "127.0.0.99"),
    ("22.0.0.127.in-addr.arpa", "PTR", "tempfwd.peer.test."),
    ("25.0.0.127.in-addr.arpa", "PTR", "nofwd.peer.test."),
)
PEER_SERVFAIL = ("tempfwd.peer.test", "24.0.0.127.in-addr.arpa")

#: address → what its name lookup exercises.
PEERS = {
    "127.0.0.20": "PTR and A agree: the name is verified",
    "127.0.0.21": "the name's A record is another address (forged)",
    "127.0.0.22": "the name's A lookup fails temporarily",
    "127.0.0.23": "no PTR record",
    "127.0.0.24": "the PTR lookup fails temporarily",
    "127.0.0.25": "the name does not exist",
}

PEER_LISTENERS: dict[str, dict[str, str]] = {
    "peer_name": {"smtpd_recipient_restrictions": "reject_unknown_client_hostname"},
    "peer_reverse": {"smtpd_recipient_restrictions": "reject_unknown_reverse_client_hostname"},
}


def peer_zone(zone: Zone) -> Zone:
    for name, rdtype, value in PEER_RECORDS:
        zone.add(name, rdtype, value)
    for name in PEER_SERVFAIL:
        zone.servfail.add(name + ".")
    return zone


def engine_lines(lines: list[str]) -> list[str]:
    """The lines the restriction engine writes (warnings, rejects, permits)."""
    return [x for x in lines if x.startswith(("warning: ", "NOQUEUE: "))]
