"""The restriction cases replayed against Postfix 3.7.11 (by
record_postfix_restrictions.py) and against mailhost (by
test_postfix_restrictions.py): one main.cf, its access tables, the master.cf
listeners (each a set of ``-o`` overrides) and the SMTP dialogues.

Each case connects from its own loopback address (127.0.0.N, bound on the
client side), so the client table (``client.cidr``) picks the client-stage
action by address; the sender table by MAIL FROM, the recipient table by the
local part, the HELO table by the HELO name.  None of these addresses has a
name: every client is ``unknown[127.0.0.N]`` (but 127.0.0.1, ``localhost``).
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

#: main.cf shared by both servers; ``{dir}`` is the directory of the tables.
MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
myorigin = example.com
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
alias_maps =
mynetworks = 192.0.2.0/24
relay_domains = relay.example
virtual_mailbox_domains = example.com
virtual_mailbox_maps = inline:{{bob@example.com=x, alice@example.com=y, trap@example.com=z}}
virtual_transport = discard:
relay_transport = discard:
default_transport = discard:
smtpd_error_sleep_time = 0
smtpd_restriction_classes = restrictive, permissive, reverse_check
restrictive = warn_if_reject, reject_non_fqdn_helo_hostname, reject
permissive = permit
reverse_check = check_reverse_client_hostname_access hash:{dir}/reverse
smtpd_client_restrictions = check_client_access cidr:{dir}/client.cidr,
    check_client_access pcre:{dir}/client.pcre, check_sasl_access hash:{dir}/sasl
smtpd_helo_restrictions = check_helo_access hash:{dir}/helo, reject_invalid_helo_hostname,
    reject_non_fqdn_helo_hostname
smtpd_sender_restrictions = check_sender_access hash:{dir}/sender, reject_non_fqdn_sender,
    reject_unlisted_sender
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access pcre:{dir}/recipient.pcre,
    reject_non_fqdn_recipient, reject_multi_recipient_bounce, reject_unauth_pipelining
smtpd_data_restrictions = reject_unauth_pipelining, reject_multi_recipient_bounce
smtpd_end_of_data_restrictions = check_sender_access hash:{dir}/eod
smtpd_etrn_restrictions = check_etrn_access hash:{dir}/etrn
"""

#: file name -> contents (hash: tables are built with postmap).
TABLES = {
    "client.cidr": """\
127.0.0.3 REJECT
127.0.0.4 REJECT Your network is blocked
127.0.0.5 DEFER
127.0.0.6 450 4.7.9 Slow down
127.0.0.7 550 Not welcome here
127.0.0.8 OK
127.0.0.9 HOLD
127.0.0.10 DISCARD
127.0.0.11 WARN client under observation
127.0.0.12 INFO client noted
127.0.0.13 DEFER_IF_PERMIT
127.0.0.14 DEFER_IF_REJECT
127.0.0.15 permit_mynetworks, reject
127.0.0.16 restrictive
127.0.0.17 hash:/etc/postfix/nonexistent
127.0.0.18 bogus_restriction
127.0.0.19 12345
127.0.0.20 PREPEND X-Client-Tag: watched
127.0.0.21 FILTER smtp:[127.0.0.1]:10025
127.0.0.22 REDIRECT trap@example.com
127.0.0.23 BCC trap@example.com
127.0.0.24 550 5.1.1 Wrong status for a client
127.0.0.25 defer_if_permit
127.0.0.26 warn_if_reject, reject
127.0.0.27 sleep 1, permit
127.0.0.28 DUNNO
127.0.0.29 DEFER_IF_REJECT 4.7.3 Not now
127.0.0.30 permissive
127.0.0.31 reverse_check
127.0.0.32 defer_if_reject, reject
127.0.0.33 DEFER_IF_PERMIT 4.7.4 Greylisted client
127.0.0.34 421 4.7.0 Closing time
127.0.0.0/24 DUNNO
""",
    "client.pcre": """\
/^127\\.0\\.0\\.14$/ REJECT rejected after DEFER_IF_REJECT
/^127\\.0\\.0\\.29$/ 554 5.7.1 Second table rejects
""",
    "reverse": "unknown REJECT Unverified client name\n",
    "sasl": "someone REJECT\n",
    "helo": """\
reject.helo.test REJECT
defer.helo.test 451 4.7.1 HELO deferred
hold.helo.test HOLD
warn.helo.test WARN suspicious helo
dsn.helo.test 550 5.1.2 Mailbox status for a HELO
ok.helo.test OK
""",
    "sender": """\
reject@client.test REJECT
text@client.test REJECT Sender blocked by policy
defer@client.test DEFER
defertext@client.test DEFER Come back later
s451@client.test 451 4.7.9 Sender deferred by policy
s553@client.test 553 No status given
dsn@client.test 550 5.1.1 Mailbox status on a sender
hold@client.test HOLD
holdtext@client.test HOLD held for review
discard@client.test DISCARD
discardtext@client.test DISCARD silently dropped
redirect@client.test REDIRECT trap@example.com
bcc@client.test BCC trap@example.com
filter@client.test FILTER smtp:[127.0.0.1]:10025
filterbad@client.test FILTER nocolon
prepend@client.test PREPEND X-Sender-Tag: tagged
prependbad@client.test PREPEND not a header
warn@client.test WARN sender under watch
info@client.test INFO sender noted
dip@client.test DEFER_IF_PERMIT
diptext@client.test DEFER_IF_PERMIT 4.7.5 Greylisted
dir@nofqdn DEFER_IF_REJECT
ok@client.test OK
num@client.test 12345
dunno@client.test DUNNO
list@client.test permit_mynetworks, reject
class@client.test restrictive
table@client.test hash:/etc/postfix/other
unknown@client.test bogus_restriction
blocked.test REJECT Whole domain blocked
localpart@ REJECT Local part blocked
""",
    "eod": """\
eodreject@client.test REJECT End of data refused
eodhold@client.test HOLD
eoddiscard@client.test DISCARD
eodprepend@client.test PREPEND X-Late: too late
eoddip@client.test DEFER_IF_PERMIT
""",
    "etrn": """\
blocked.example REJECT
held.example HOLD
""",
    "recipient.pcre": """\
/^rreject@/ REJECT
/^rtext@/ 550 5.7.1 Recipient refused by policy
/^rdsn@/ 550 5.1.8 Sender status for a recipient
/^rhold@/ HOLD
/^rdefer@/ DEFER
/^rwarn@/ WARN recipient watched
/^rinfo@/ INFO recipient noted
/^rok@/ OK
/^rbcc@/ BCC trap@example.com
/^rredirect@/ REDIRECT trap@example.com
/^rclass@/ restrictive
/^rdiscard@/ DISCARD
""",
}

#: The hash: tables (postmap / mailhost postmap builds their index).
HASH_TABLES = ("reverse", "sasl", "helo", "sender", "eod", "etrn")

#: listener name -> master.cf ``-o`` arguments.
LISTENERS = {
    "mx": "",
    "nodelay": "-o smtpd_delay_reject=no",
    "soft": "-o soft_bounce=yes",
    "helo_required": "-o smtpd_helo_required=yes",
    "footer": (
        "-o { smtpd_reject_footer = Contact postmaster@example.com\\n"
        "client=$client_address name=$client_name helo=$helo_name } "
    ),
    "footer_continued": "-o { smtpd_reject_footer = \\c (see https://example.com/help) }",
    "inet": "-o smtpd_relay_restrictions=permit_inet_interfaces,reject",
    "data_stage": "-o smtpd_recipient_restrictions=",
    "bad_name": "-o smtpd_helo_restrictions=no_such_restriction",
    "no_acl": "-o smtpd_data_restrictions=hash:{dir}/sender",
}


def listener_args(name: str, directory: Path) -> str:
    return LISTENERS[name].replace("{dir}", str(directory))


def write_tables(directory: Path) -> None:
    for name, text in TABLES.items():
        (directory / name).write_text(text)


# -- dialogues -----------------------------------------------------------------

#: Sent after DATA when the reply was 354.
BODY = "Subject: restriction case\r\nMessage-Id: <case@client.test>\r\n\r\nbody\r\n."

#: A step: (text to send, replies to read).  ``""`` sends nothing (the greeting);
#: :data:`BODY` is sent only after a 354.
Step = tuple[str, int]


@dataclass(frozen=True)
class Case:
    listener: str
    client: str
    steps: tuple[Step, ...]


def mail(
    sender: str = "tester@client.test",
    rcpts: tuple[str, ...] = ("bob@example.com",),
    *,
    helo: str | None = "client.test",
    data: bool = True,
) -> tuple[Step, ...]:
    steps: list[Step] = [("", 1)]
    if helo is not None:
        steps.append((f"EHLO {helo}", 1))
    steps.append((f"MAIL FROM:<{sender}>", 1))
    steps += [(f"RCPT TO:<{r}>", 1) for r in rcpts]
    if data:
        steps += [("DATA", 1), (BODY, 1)]
    steps.append(("QUIT", 1))
    return tuple(steps)


def commands(*lines: str) -> tuple[Step, ...]:
    return (("", 1), *((line, 1) for line in lines), ("QUIT", 1))


_CLIENT_ACTIONS = {
    "client_reject": 3,
    "client_reject_text": 4,
    "client_defer": 5,
    "client_4nn_with_status": 6,
    "client_5nn_without_status": 7,
    "client_ok": 8,
    "client_hold": 9,
    "client_discard": 10,
    "client_warn": 11,
    "client_info": 12,
    "client_defer_if_permit": 13,
    "client_defer_if_reject_then_reject": 14,
    "client_restriction_list": 15,
    "client_class_warn_if_reject": 16,
    "client_table_as_value": 17,
    "client_unknown_restriction": 18,
    "client_numerical_ok": 19,
    "client_prepend": 20,
    "client_filter": 21,
    "client_redirect": 22,
    "client_bcc": 23,
    "client_dsn_status_fixed": 24,
    "client_defer_if_permit_restriction": 25,
    "client_warn_if_reject_restriction": 26,
    "client_sleep": 27,
    "client_dunno": 28,
    "client_defer_if_reject_with_status": 29,
    "client_class_permit": 30,
    "client_reverse_hostname_access": 31,
    "client_defer_if_reject_restriction": 32,
    "client_defer_if_permit_with_status": 33,
    "client_421_disconnects": 34,
}

CASES: dict[str, Case] = {
    name: Case("mx", f"127.0.0.{n}", mail()) for name, n in _CLIENT_ACTIONS.items()
}

_SENDERS = [
    "reject", "text", "defer", "defertext", "s451", "s553", "dsn", "hold", "holdtext",
    "discard", "discardtext", "redirect", "bcc", "filter", "filterbad", "prepend",
    "prependbad", "warn", "info", "dip", "diptext", "ok", "num", "dunno", "list", "class",
    "table", "unknown",
]  # fmt: skip
CASES.update({f"sender_{s}": Case("mx", "127.0.0.2", mail(f"{s}@client.test")) for s in _SENDERS})
CASES.update(
    {
        "sender_defer_if_reject_non_fqdn": Case("mx", "127.0.0.2", mail("dir@nofqdn")),
        "sender_non_fqdn": Case("mx", "127.0.0.2", mail("tester@nofqdn")),
        "sender_parent_domain": Case("mx", "127.0.0.2", mail("someone@sub.blocked.test")),
        "sender_localpart_key": Case("mx", "127.0.0.2", mail("localpart@elsewhere.test")),
        "sender_unlisted": Case("mx", "127.0.0.2", mail("nobody@example.com")),
        "sender_listed": Case("mx", "127.0.0.2", mail("alice@example.com")),
        "sender_null_multi_recipient_bounce": Case(
            "mx", "127.0.0.2", mail("", ("bob@example.com", "alice@example.com"))
        ),
        "sender_class_with_bad_helo": Case(
            "mx", "127.0.0.2", mail("class@client.test", helo="nodots")
        ),
    }
)
_RECIPIENTS = [
    "rreject", "rtext", "rdsn", "rhold", "rdefer", "rwarn", "rinfo", "rok", "rbcc",
    "rredirect", "rclass", "rdiscard",
]  # fmt: skip
CASES.update(
    {
        f"recipient_{r}": Case(
            "mx", "127.0.0.2", mail(rcpts=(f"{r}@relay.example", "bob@example.com"))
        )
        for r in _RECIPIENTS
    }
)
CASES.update(
    {
        "recipient_non_fqdn": Case("mx", "127.0.0.2", mail(rcpts=("bob@nofqdn",), data=False)),
        "recipient_unauth_destination": Case(
            "mx", "127.0.0.2", mail(rcpts=("someone@other.test",), data=False)
        ),
        "recipient_unlisted": Case(
            "mx", "127.0.0.2", mail(rcpts=("nobody@example.com",), data=False)
        ),
        "helo_reject": Case("mx", "127.0.0.2", mail(helo="reject.helo.test")),
        "helo_4nn": Case("mx", "127.0.0.2", mail(helo="defer.helo.test")),
        "helo_hold": Case("mx", "127.0.0.2", mail(helo="hold.helo.test")),
        "helo_warn": Case("mx", "127.0.0.2", mail(helo="warn.helo.test")),
        "helo_dsn_status_fixed": Case("mx", "127.0.0.2", mail(helo="dsn.helo.test")),
        "helo_ok": Case("mx", "127.0.0.2", mail(helo="ok.helo.test")),
        "helo_non_fqdn": Case("mx", "127.0.0.2", mail(helo="nodots")),
        "helo_invalid_name": Case("mx", "127.0.0.2", mail(helo="bad!name")),
        "helo_invalid_literal": Case("mx", "127.0.0.2", mail(helo="[300.1.2.3]")),
        "helo_address_literal": Case("mx", "127.0.0.2", mail(helo="[127.0.0.2]")),
        "helo_bare_address": Case("mx", "127.0.0.2", mail(helo="1.2.3.4")),
        "helo_trailing_dot": Case("mx", "127.0.0.2", mail(helo="client.test.")),
        "no_helo": Case("mx", "127.0.0.2", mail(helo=None)),
        "end_of_data_reject": Case("mx", "127.0.0.2", mail("eodreject@client.test")),
        "end_of_data_hold": Case("mx", "127.0.0.2", mail("eodhold@client.test")),
        "end_of_data_discard": Case("mx", "127.0.0.2", mail("eoddiscard@client.test")),
        "end_of_data_prepend": Case("mx", "127.0.0.2", mail("eodprepend@client.test")),
        "end_of_data_defer_if_permit": Case("mx", "127.0.0.2", mail("eoddip@client.test")),
        "pipelining_after_ehlo": Case(
            "mx",
            "127.0.0.2",
            (
                ("", 1),
                (
                    "EHLO client.test\r\nMAIL FROM:<tester@client.test>\r\n"
                    "RCPT TO:<bob@example.com>",
                    3,
                ),
                ("QUIT", 1),
            ),
        ),
        "vrfy_rejected_recipient": Case(
            "mx", "127.0.0.2", commands("EHLO client.test", "VRFY rreject@relay.example")
        ),
        "vrfy_rejected_client": Case(
            "mx", "127.0.0.3", commands("EHLO client.test", "VRFY bob@example.com")
        ),
        # -- smtpd_delay_reject = no ------------------------------------------------
        "nodelay_client_reject_access_denied": Case(
            "nodelay", "127.0.0.3", (*mail(), ("HELO client.test", 1))
        ),
        "nodelay_client_defer": Case("nodelay", "127.0.0.5", mail()),
        "nodelay_client_421": Case("nodelay", "127.0.0.34", mail()),
        "soft_bounce_footer_free_421": Case("soft", "127.0.0.34", mail()),
        "nodelay_client_hold_skipped": Case("nodelay", "127.0.0.9", mail()),
        "nodelay_client_defer_if_permit": Case("nodelay", "127.0.0.13", mail()),
        "nodelay_client_warn_if_reject": Case("nodelay", "127.0.0.26", mail()),
        "nodelay_helo_reject": Case("nodelay", "127.0.0.2", mail(helo="reject.helo.test")),
        "nodelay_helo_non_fqdn": Case("nodelay", "127.0.0.2", mail(helo="nodots")),
        "nodelay_sender_reject": Case("nodelay", "127.0.0.2", mail("reject@client.test")),
        "nodelay_sender_hold": Case("nodelay", "127.0.0.2", mail("hold@client.test")),
        "nodelay_sender_dip": Case("nodelay", "127.0.0.2", mail("dip@client.test")),
        "nodelay_sender_unlisted": Case("nodelay", "127.0.0.2", mail("nobody@example.com")),
        # -- soft_bounce -------------------------------------------------------------
        "soft_bounce_client_reject": Case("soft", "127.0.0.3", mail()),
        "soft_bounce_sender_dsn": Case("soft", "127.0.0.2", mail("dsn@client.test")),
        "soft_bounce_protocol_errors": Case(
            "soft", "127.0.0.2", commands("RCPT TO:<bob@example.com>", "FOO", "EHLO client.test")
        ),
        "soft_bounce_unlisted_recipient": Case(
            "soft", "127.0.0.2", mail(rcpts=("nobody@example.com",), data=False)
        ),
        # -- smtpd_helo_required -----------------------------------------------------
        "helo_required_mail": Case("helo_required", "127.0.0.2", mail(helo=None)),
        "helo_required_etrn": Case("helo_required", "127.0.0.2", commands("ETRN relay.example")),
        # -- smtpd_reject_footer --------------------------------------------------
        "footer_client_reject": Case("footer", "127.0.0.3", mail()),
        "footer_protocol_error": Case(
            "footer", "127.0.0.2", commands("RCPT TO:<bob@example.com>", "EHLO client.test")
        ),
        "footer_sender_defer": Case("footer", "127.0.0.2", mail("s451@client.test")),
        "footer_continued_reject": Case("footer_continued", "127.0.0.3", mail()),
        "footer_continued_unknown_command": Case(
            "footer_continued", "127.0.0.2", commands("BOGUS")
        ),
        # -- other listeners -----------------------------------------------------------
        "permit_inet_interfaces_own_address": Case(
            "inet", "127.0.0.1", mail(rcpts=("someone@other.test",), data=False)
        ),
        "permit_inet_interfaces_other_address": Case(
            "inet", "127.0.0.2", mail(rcpts=("someone@other.test",), data=False)
        ),
        "data_multi_recipient_bounce": Case(
            "data_stage", "127.0.0.2", mail("", ("bob@example.com", "alice@example.com"))
        ),
        "data_defer_if_permit_sender": Case("data_stage", "127.0.0.2", mail("dip@client.test")),
        "unknown_restriction_in_list": Case("bad_name", "127.0.0.2", mail(data=False)),
        "table_without_check_in_data_list": Case("no_acl", "127.0.0.2", mail()),
        # -- ETRN ----------------------------------------------------------------------
        "etrn_relay_domain": Case(
            "mx", "127.0.0.2", commands("EHLO client.test", "ETRN relay.example")
        ),
        "etrn_prefixed_domain": Case(
            "mx", "127.0.0.2", commands("EHLO client.test", "ETRN @relay.example")
        ),
        "etrn_not_fast_flush_domain": Case(
            "mx", "127.0.0.2", commands("EHLO client.test", "ETRN other.test")
        ),
        "etrn_rejected_by_table": Case(
            "mx", "127.0.0.2", commands("EHLO client.test", "ETRN blocked.example")
        ),
        "etrn_hold_unavailable": Case(
            "mx", "127.0.0.2", commands("EHLO client.test", "ETRN held.example")
        ),
        "etrn_syntax": Case(
            "mx",
            "127.0.0.2",
            commands("EHLO client.test", "ETRN", "ETRN a b", "ETRN bad!name", "ETRN [1.2.3.4]"),
        ),
        "etrn_in_transaction": Case(
            "mx",
            "127.0.0.2",
            commands("EHLO client.test", "MAIL FROM:<tester@client.test>", "ETRN relay.example"),
        ),
        "etrn_rejected_client": Case(
            "mx", "127.0.0.3", commands("EHLO client.test", "ETRN relay.example")
        ),
        "etrn_without_helo": Case("mx", "127.0.0.2", commands("ETRN relay.example")),
    }
)


# -- running a dialogue ----------------------------------------------------------


class Reader:
    """Complete replies (multi-line ones joined with newlines) from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def reply(self, timeout: float = 15.0) -> str | None:
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n" not in self.buffer:
                self.sock.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    data = self.sock.recv(65536)
                except (TimeoutError, ConnectionError):
                    data = b""
                if not data:
                    return "\n".join(lines) if lines else None
                self.buffer += data
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            text = line.decode(errors="replace")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return "\n".join(lines)


_QID = re.compile(r"(queued as )[0-9A-Za-z]+")


def run_dialogue(port: int, client: str, steps: tuple[Step, ...]) -> list[list[str]]:
    """For each step the replies read after sending it (queue ids made ``QID``)."""
    out: list[list[str]] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((client, 0))
    sock.settimeout(15)
    sock.connect(("127.0.0.1", port))
    with sock:
        reader = Reader(sock)
        last = ""
        for data, count in steps:
            if data == BODY and not last.startswith("354"):
                continue
            if data:
                try:
                    sock.sendall(data.encode() + b"\r\n")
                except OSError:
                    out.append([])
                    continue
            got: list[str] = []
            for _ in range(count):
                reply = reader.reply()
                if reply is None:
                    break
                got.append(_QID.sub(r"\1QID", reply))
            out.append(got)
            last = got[-1] if got else ""
    return out


_LOG_QID = re.compile(r"\b[0-9A-F]{10,}(?=: )")
#: smtpd's lines about restrictions and the session's outcome.
_KEPT = re.compile(
    r": (reject|reject_warning|hold|discard|redirect|filter|warn|info|bcc|permit): "
    r"|^warning: |mapping DSN status|improper command pipelining|disconnect from"
)


def smtpd_log_lines(text: str, tag: str) -> list[str]:
    """The kept lines after ``TAG[PID]: ``, queue ids replaced by ``QID``."""
    out = []
    for line in text.splitlines():
        _head, sep, rest = line.partition(f"{tag}[")
        if not sep:
            continue
        message = rest.split("]: ", 1)[1]
        if _KEPT.search(message):
            out.append(_LOG_QID.sub("QID", message))
    return out
