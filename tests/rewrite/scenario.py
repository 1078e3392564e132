"""The address-rewriting scenario: one main.cf, its tables and the messages sent.

Shared by record_postfix_rewrite.py (which asks real Postfix 3.7.11) and the
tests (which ask mailhost the same and compare with postfix_rewrite.json).

``probe@example.com`` is mapped differently by sender_canonical_maps and
recipient_canonical_maps, and the "headers" message carries it in every
header Postfix might treat as an address header: what each header becomes
shows whether cleanup treats it as a sender header, a recipient header, or
not an address header at all.
"""

from __future__ import annotations

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
myorigin = example.com
mydestination =
inet_interfaces = loopback-only
virtual_mailbox_domains = example.com, example.net, example.org
virtual_alias_maps = texthash:{dir}/virtual
recipient_delimiter = +
sender_canonical_maps = texthash:{dir}/sender_canonical
recipient_canonical_maps = texthash:{dir}/recipient_canonical
canonical_maps = texthash:{dir}/canonical
masquerade_domains = !keep.example.com, example.com
masquerade_exceptions = root
smtpd_relay_restrictions = reject_unauth_destination
alias_maps =
relay_domains = example.com
smtpd_recipient_restrictions = permit
smtpd_reject_unlisted_recipient = no
"""

TABLES: dict[str, list[str]] = {
    "sender_canonical": [
        "probe@example.com probe.sender@example.com",
        "alice@example.com Alice.Smith@example.com",
        "@old.example @example.com",
    ],
    "recipient_canonical": [
        "probe@example.com probe.recipient@example.com",
        "info@example.com support@example.com",
        "joe@example.com joe.user@example.net",
    ],
    "canonical": [
        "bob@example.com robert@example.com",
        "carol carol.c@example.org",
        "dave@example.com dave@example.net, other@example.net",
        "loop1@example.com loop2@example.com",
        "loop2@example.com loop1@example.com",
        "chain1@example.com chain2@example.com",
        "chain2@example.com chain3@example.com",
    ],
    "virtual": [
        "support@example.com helpdesk@example.net",
        "info@example.com not-used@example.net",
    ],
}

#: smtp_generic_maps, applied by smtp(8) when the held messages go out.
GENERIC: list[str] = [
    "Alice.Smith@example.com alice@isp.example",
    "helpdesk@example.net desk@isp.example",
    "@example.org @isp.example",
    "robert robert@isp.example",
]

MESSAGES: dict[str, dict[str, object]] = {
    "headers": {
        "sender": "probe@example.com",
        "recipients": ["probe@example.com"],
        "headers": [
            f"{name}: Probe <probe@example.com>"
            for name in (
                "From",
                "Sender",
                "Reply-To",
                "To",
                "Cc",
                "Resent-From",
                "Resent-Sender",
                "Resent-To",
                "Resent-Cc",
                "Resent-Reply-To",
                "Errors-To",
                "Return-Receipt-To",
                "Disposition-Notification-To",
                "Mail-Followup-To",
                "Mail-Reply-To",
                "Apparently-To",
                "Delivered-To",
                "In-Reply-To",
                "X-Original-To",
                "Subject",
            )
        ],
    },
    "envelope": {
        "sender": "alice@example.com",
        "recipients": ["info@example.com", "joe+foo@example.com", "bob@example.com"],
        "headers": [
            "From: Alice <alice@example.com>",
            'To: info@example.com, "Joe" <joe+foo@example.com>,',
            " bob@example.com (Bob B.)",
            "Cc: carol, undisclosed-recipients:;",
            "Reply-To: alice@old.example",
        ],
    },
    "unqualified": {
        "sender": "alice",
        "recipients": ["info", "carol", "bob@example.com"],
        "headers": ["From: alice", "To: info, carol", "Cc: user@host"],
    },
    "remote": {
        "remote": True,
        "sender": "alice@example.com",
        "recipients": ["bob@example.com"],
        "headers": ["From: alice", "To: bob@example.com, carol", "Cc: Bob <bob@example.com>"],
    },
    "multi_and_loop": {
        "sender": "dave@example.com",
        "recipients": ["loop1@example.com", "chain1@example.com", "dave@example.com"],
        "headers": ["From: dave@example.com", "To: loop1@example.com, chain1@example.com"],
    },
    "masquerade": {
        "sender": "user@host.sub.example.com",
        "recipients": ["user2@host.sub.example.com", "root@host.example.com"],
        "headers": [
            "From: user@host.sub.example.com",
            "Sender: root@host.example.com",
            "To: user2@host.sub.example.com, x@a.keep.example.com",
            "Cc: y@example.com, z@notexample.com",
        ],
    },
    "routing": {
        "sender": "uucphost!ann",
        "recipients": ["info@example.com"],
        "headers": ["From: uucphost!ann", "To: ann%example.org, @relay.example:bob@example.com"],
    },
    "null_sender": {
        "sender": "",
        "recipients": ["bob@example.com"],
        "headers": ["From: MAILER-DAEMON", "To: bob@example.com"],
    },
    "formatting": {
        "sender": "alice+tag@example.com",
        "recipients": ["bob@example.com"],
        "headers": [
            "to: bob@example.com",
            "CC:   Bob   Smith  <bob@example.com>  ,  (comment) carol",
            'From: "Alice A." <alice+tag@example.com>',
            "Reply-To: team: alice@example.com, bob@example.com;",
            "Resent-To: bob@example.com,",
            "  info@example.com",
            "Resent-Cc: "
            + ", ".join(f"user{i}@example.com" for i in range(4))
            + ", bob@example.com,"
            + " carol@example.com",
            "Sender: Unchanged <someone@example.net>",
        ],
    },
    "generic": {
        "sender": "Alice.Smith@example.com",
        "recipients": ["support@example.com", "someone@example.org"],
        "headers": [
            "From: Alice Smith <Alice.Smith@example.com>",
            "To: support@example.com, someone@example.org",
            "Cc: robert@example.com",
            "Reply-To: someone+tag@example.org",
        ],
    },
}
