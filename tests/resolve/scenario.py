"""One virtual-hosting setup, as files, shared by the Postfix recorder and the tests.

The recorder (record_postfix_rcpt.py) runs a real Postfix 3.7.11 on these
files; the tests build mailhost's resolver from the very same main.cf (through
``load_config``) and the same tables, and compare with what Postfix answered.
``{dir}`` in every text is the directory the files are written to.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination = localhost, $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = all
mynetworks = 192.0.2.0/24, [2001:db8::]/32
recipient_delimiter = +
relay_domains = relay.example
relay_recipient_maps = texthash:{dir}/relay_recipients
virtual_alias_domains = alias.example
virtual_mailbox_domains = hosted.example, catch.example, sqlite:{dir}/domains.cf
virtual_mailbox_maps = texthash:{dir}/vmailbox, sqlite:{dir}/mailbox.cf
virtual_alias_maps = texthash:{dir}/valias, sqlite:{dir}/alias.cf,
    sqlite:{dir}/alias_domain.cf, sqlite:{dir}/alias_domain_catchall.cf
alias_maps = texthash:{dir}/aliases
local_recipient_maps = texthash:{dir}/passwd $alias_maps
"""

FILES = {
    "relay_recipients": "known@relay.example x\n",
    "vmailbox": (
        "bob@hosted.example hosted.example/bob/\n"
        "alice@hosted.example hosted.example/alice/\n"
        "carol@hosted.example hosted.example/carol/\n"
        "dave@catch.example catch.example/dave/\n"
        "erin@catch.example catch.example/erin/\n"
        "postbox@catch.example catch.example/postbox/\n"
    ),
    "valias": (
        "bob@hosted.example bob@hosted.example\n"
        "alice@hosted.example alice@hosted.example\n"
        "carol@hosted.example carol@hosted.example\n"
        "info@hosted.example bob@hosted.example, alice@hosted.example\n"
        "team@hosted.example info@hosted.example, carol@hosted.example\n"
        "both@hosted.example info@hosted.example, bob@hosted.example\n"
        "loop1@hosted.example loop2@hosted.example\n"
        "loop2@hosted.example loop1@hosted.example\n"
        "keep@hosted.example keep@hosted.example, carol@hosted.example\n"
        "away@hosted.example joe@elsewhere.example\n"
        "dave@catch.example dave@catch.example\n"
        "postbox@catch.example postbox@catch.example\n"
        "@catch.example postbox@catch.example\n"
        "sales@alias.example bob@hosted.example\n"
        "@alias.example @hosted.example\n"
        "shop@alias.example carol\n"
    ),
    "aliases": "postmaster root\nabuse root\n",
    "passwd": "root x\n",
    "domains.cf": (
        "dbpath = {dir}/postfixadmin.sqlite\n"
        "query = SELECT domain FROM domain WHERE domain = '%s' AND backupmx = '0'"
        " AND active = '1'\n"
    ),
    "mailbox.cf": (
        "dbpath = {dir}/postfixadmin.sqlite\n"
        "query = SELECT maildir FROM mailbox WHERE username = '%s' AND active = '1'\n"
    ),
    "alias.cf": (
        "dbpath = {dir}/postfixadmin.sqlite\n"
        "query = SELECT goto FROM alias WHERE address = '%s' AND active = '1'\n"
    ),
    "alias_domain.cf": (
        "dbpath = {dir}/postfixadmin.sqlite\n"
        "query = SELECT alias.goto FROM alias, alias_domain"
        " WHERE alias_domain.alias_domain = '%d'"
        " AND alias.address = ('%u' || '@' || alias_domain.target_domain)"
        " AND alias.active = '1' AND alias_domain.active = '1'\n"
    ),
    "alias_domain_catchall.cf": (
        "dbpath = {dir}/postfixadmin.sqlite\n"
        "query = SELECT alias.goto FROM alias, alias_domain"
        " WHERE alias_domain.alias_domain = '%d'"
        " AND alias.address = ('@' || alias_domain.target_domain)"
        " AND alias.active = '1' AND alias_domain.active = '1'\n"
    ),
    # A PostgreSQL server that is not running (nothing listens on port 9 of
    # loopback): every lookup is a temporary failure, as during an outage.
    # (Postfix's sqlite client treats its errors as fatal, so SQLite cannot
    # stand in for this.)
    "broken.cf": (
        "hosts = 127.0.0.1:9\nuser = postfix\npassword = x\ndbname = postfix\n"
        "query = SELECT goto FROM alias WHERE address = '%s'\n"
    ),
}

#: PostfixAdmin rows (the columns the queries use).
DOMAINS = [
    ("db.example", 0, 1),
    ("off.example", 0, 0),
    ("mirror.example", 0, 1),
    ("dead.example", 0, 1),
    ("backup.example", 1, 1),
]
MAILBOXES = [
    ("frank@db.example", "db.example/frank/", 1),
    ("gina@db.example", "db.example/gina/", 0),
    ("hank@off.example", "off.example/hank/", 1),
]
ALIASES = [
    ("frank@db.example", "frank@db.example", 1),
    ("gina@db.example", "gina@db.example", 0),
    ("old@db.example", "frank@db.example", 0),
    ("list@db.example", "frank@db.example,bob@hosted.example", 1),
    ("hank@off.example", "hank@off.example", 1),
]
ALIAS_DOMAINS = [("mirror.example", "db.example", 1), ("dead.example", "db.example", 0)]

#: Listener name -> master.cf ``-o`` overrides.
LISTENERS: dict[str, dict[str, str]] = {
    # Postfix 3.7 defaults: smtpd_relay_restrictions ends in defer_unauth_destination.
    "default": {},
    "strict": {
        "smtpd_relay_restrictions": "",
        "smtpd_recipient_restrictions": (
            "reject_non_fqdn_recipient, permit_mynetworks, permit_sasl_authenticated,"
            " reject_unauth_destination"
        ),
    },
    "quiet": {"show_user_unknown_table_name": "no"},
    "unlisted_off": {"smtpd_reject_unlisted_recipient": "no"},
    "explicit": {
        "smtpd_recipient_restrictions": "reject_unlisted_recipient, permit",
        "smtpd_reject_unlisted_recipient": "no",
    },
    "reject_all": {"smtpd_recipient_restrictions": "permit_mynetworks, reject"},
    "defer_all": {"smtpd_recipient_restrictions": "defer"},
    # (A broken virtual_mailbox_domains cannot be recorded this way: the
    # address class comes from trivial-rewrite, which master.cf -o options of
    # an smtpd line do not reach.)
    "brokenmbox": {"virtual_mailbox_maps": "pgsql:{dir}/broken.cf"},
    "brokenalias": {"virtual_alias_maps": "pgsql:{dir}/broken.cf"},
    "relaycode": {"relay_domains_reject_code": "550"},
    "relaycode_strict": {
        "relay_domains_reject_code": "550",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    },
    "permitfirst": {
        "smtpd_relay_restrictions": "permit_auth_destination, reject",
        "smtpd_recipient_restrictions": "",
    },
}

#: Client identities (XCLIENT ADDR / LOGIN at Postfix; arguments at mailhost).
CLIENTS = {
    "stranger": ("203.0.113.9", None),
    "mynetworks": ("192.0.2.10", None),
    "sasl": ("203.0.113.9", "bob@hosted.example"),
    "mynetworks6": ("2001:db8::25", None),
}

#: name -> (listener, client, the text between ``RCPT TO:`` and the line end).
RCPT_CASES: dict[str, tuple[str, str, str]] = {
    "mailbox": ("default", "stranger", "<bob@hosted.example>"),
    "mailbox_case": ("default", "stranger", "<BOB@Hosted.Example>"),
    "mailbox_extension": ("default", "stranger", "<bob+tag@hosted.example>"),
    "mailbox_empty_extension": ("default", "stranger", "<bob+@hosted.example>"),
    "alias_fanout": ("default", "stranger", "<info@hosted.example>"),
    "alias_nested": ("default", "stranger", "<team@hosted.example>"),
    "alias_loop": ("default", "stranger", "<loop1@hosted.example>"),
    "alias_offsite": ("default", "stranger", "<away@hosted.example>"),
    "unknown_user": ("default", "stranger", "<nobody@hosted.example>"),
    "unknown_user_case": ("default", "stranger", "<Nobody@Hosted.Example>"),
    "unknown_user_extension": ("default", "stranger", "<nobody+x@hosted.example>"),
    "unknown_from_mynetworks": ("default", "mynetworks", "<nobody@hosted.example>"),
    "unknown_authenticated": ("default", "sasl", "<nobody@hosted.example>"),
    "postmaster_virtual": ("default", "stranger", "<postmaster@hosted.example>"),
    "catchall_self_alias": ("default", "stranger", "<dave@catch.example>"),
    "catchall_swallows": ("default", "stranger", "<erin@catch.example>"),
    "catchall_any": ("default", "stranger", "<whoever@catch.example>"),
    "alias_domain_class": ("default", "stranger", "<sales@alias.example>"),
    "alias_domain_class_rewrite": ("default", "stranger", "<anyone@alias.example>"),
    "sql_mailbox": ("default", "stranger", "<frank@db.example>"),
    "sql_inactive_mailbox": ("default", "stranger", "<gina@db.example>"),
    "sql_inactive_alias": ("default", "stranger", "<old@db.example>"),
    "sql_alias_list": ("default", "stranger", "<list@db.example>"),
    "sql_alias_domain": ("default", "stranger", "<frank@mirror.example>"),
    "sql_alias_domain_unknown": ("default", "stranger", "<nobody@mirror.example>"),
    "sql_inactive_alias_domain": ("default", "stranger", "<frank@dead.example>"),
    "sql_inactive_domain": ("default", "stranger", "<hank@off.example>"),
    "sql_inactive_domain_mynetworks": ("default", "mynetworks", "<hank@off.example>"),
    "sql_backupmx_domain": ("default", "stranger", "<x@backup.example>"),
    "relay_stranger": ("default", "stranger", "<someone@foreign.example>"),
    "relay_mynetworks": ("default", "mynetworks", "<someone@foreign.example>"),
    "relay_mynetworks_ipv6": ("default", "mynetworks6", "<someone@foreign.example>"),
    "relay_authenticated": ("default", "sasl", "<someone@foreign.example>"),
    "relay_strict_stranger": ("strict", "stranger", "<someone@foreign.example>"),
    "relay_strict_mynetworks": ("strict", "mynetworks", "<someone@foreign.example>"),
    "relay_domain_known": ("default", "stranger", "<known@relay.example>"),
    "relay_domain_unknown": ("default", "stranger", "<unknown@relay.example>"),
    "relay_subdomain": ("default", "stranger", "<known@sub.relay.example>"),
    "relay_routing": ("default", "stranger", "<bob%foreign.example@hosted.example>"),
    "postmaster_bare": ("default", "stranger", "<postmaster>"),
    "postmaster_bare_strict": ("strict", "stranger", "<postmaster>"),
    "bare_local_known": ("default", "stranger", "<root>"),
    "bare_local_unknown": ("default", "stranger", "<nobody>"),
    "local_known": ("default", "stranger", "<root@localhost>"),
    "local_alias": ("default", "stranger", "<abuse@localhost>"),
    "local_unknown": ("default", "stranger", "<nobody@localhost>"),
    "local_postmaster": ("default", "stranger", "<postmaster@mx.example.com>"),
    "local_mailer_daemon": ("default", "stranger", "<MAILER-DAEMON@localhost>"),
    "local_interface_literal": ("default", "stranger", "<root@[127.0.0.1]>"),
    "local_interface_literal_unknown": ("default", "stranger", "<nobody@[127.0.0.1]>"),
    "nonfqdn_strict": ("strict", "stranger", "<bob@hosted>"),
    "nonfqdn_bare_strict": ("strict", "mynetworks", "<root>"),
    "nonfqdn_default": ("default", "stranger", "<bob@hosted>"),
    "quoted_localpart": ("default", "stranger", '<"bob"@hosted.example>'),
    "source_route": ("default", "stranger", "<@relay.example:bob@hosted.example>"),
    "trailing_dot": ("default", "stranger", "<bob@hosted.example.>"),
    "quiet_unknown": ("quiet", "stranger", "<nobody@hosted.example>"),
    "quiet_alias_domain_unknown": ("quiet", "stranger", "<nobody@mirror.example>"),
    "unlisted_off_unknown": ("unlisted_off", "stranger", "<nobody@hosted.example>"),
    "explicit_unlisted_unknown": ("explicit", "stranger", "<nobody@hosted.example>"),
    "explicit_unlisted_foreign": ("explicit", "stranger", "<someone@foreign.example>"),
    "reject_all_stranger": ("reject_all", "stranger", "<bob@hosted.example>"),
    "reject_all_mynetworks": ("reject_all", "mynetworks", "<nobody@hosted.example>"),
    "defer_all": ("defer_all", "stranger", "<bob@hosted.example>"),
    "broken_mailbox_maps": ("brokenmbox", "stranger", "<nobody@hosted.example>"),
    "broken_mailbox_maps_alias_hit": ("brokenmbox", "stranger", "<info@hosted.example>"),
    "broken_alias_maps": ("brokenalias", "stranger", "<bob@hosted.example>"),
    "relay_code_defer": ("relaycode", "stranger", "<someone@foreign.example>"),
    "relay_code_reject": ("relaycode_strict", "stranger", "<someone@foreign.example>"),
    "permit_auth_destination_hosted": ("permitfirst", "stranger", "<nobody@hosted.example>"),
    "permit_auth_destination_foreign": ("permitfirst", "stranger", "<someone@foreign.example>"),
}

#: name -> recipients of one message (each accepted at RCPT); Postfix's answer at
#: the end of DATA and the (orig_to, to) pairs it delivered are recorded.
EXPANSION_CASES: dict[str, list[str]] = {
    "mailbox": ["bob@hosted.example"],
    "extension_propagates": ["bob+tag@hosted.example"],
    "extension_case_kept": ["Alice+Tag@Hosted.Example"],
    "fanout": ["info@hosted.example"],
    "nested": ["team@hosted.example"],
    "fanout_plus_member": ["info@hosted.example", "bob@hosted.example"],
    "same_rcpt_twice": ["bob@hosted.example", "bob@hosted.example"],
    "self_and_other": ["keep@hosted.example"],
    "two_paths_to_bob": ["both@hosted.example"],
    "extension_through_alias": ["info+x@hosted.example"],
    "catchall_self_alias": ["dave@catch.example"],
    "catchall_swallows": ["erin@catch.example"],
    "catchall_extension": ["erin+x@catch.example"],
    "alias_domain_class": ["sales@alias.example"],
    "at_domain_rewrite": ["anyone+x@alias.example"],
    "bare_result": ["shop@alias.example"],
    "sql_alias_domain": ["frank@mirror.example"],
    "sql_alias_list": ["list@db.example"],
    "loop": ["loop1@hosted.example"],
    "loop_with_good": ["bob@hosted.example", "loop1@hosted.example"],
    "offsite": ["away@hosted.example"],
}


def write_files(directory: Path) -> None:
    """Write main.cf, the tables and the PostfixAdmin SQLite database."""
    for name, text in FILES.items():
        (directory / name).write_text(text.format(dir=directory).replace("{{", "{"))
    (directory / "main.cf").write_text(MAIN_CF.format(dir=directory))
    db = directory / "postfixadmin.sqlite"
    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE domain (domain TEXT, backupmx TEXT, active TEXT);"
            "CREATE TABLE mailbox (username TEXT, maildir TEXT, active TEXT);"
            "CREATE TABLE alias (address TEXT, goto TEXT, active TEXT);"
            "CREATE TABLE alias_domain (alias_domain TEXT, target_domain TEXT, active TEXT);"
        )
        conn.executemany("INSERT INTO domain VALUES (?, ?, ?)", DOMAINS)
        conn.executemany("INSERT INTO mailbox VALUES (?, ?, ?)", MAILBOXES)
        conn.executemany("INSERT INTO alias VALUES (?, ?, ?)", ALIASES)
        conn.executemany("INSERT INTO alias_domain VALUES (?, ?, ?)", ALIAS_DOMAINS)
    conn.close()


def overrides(listener: str, directory: Path) -> dict[str, str]:
    return {k: v.format(dir=directory) for k, v in LISTENERS[listener].items()}
