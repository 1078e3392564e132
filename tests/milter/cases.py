"""SMTP dialogues with a milter (tests/milter/peer.py) answering as scripted,
replayed against mailhost and (by record_postfix_milter.py) against a real
Postfix 3.7.11 smtpd with the same settings; postfix_milter.json holds
Postfix's replies, milter log lines, what the milter was sent and, for held
messages, the queue file as postcat shows it.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from mailhost.milter import wire
from tests.milter.peer import Packet, Script, header_change, replycode

Step = tuple[bytes, int]

EHLO = b"EHLO client.example.org\r\n"
MAIL = b"MAIL FROM:<sender@client.example.org>\r\n"
RCPT = b"RCPT TO:<alice@example.com>\r\n"
RCPT_BOB = b"RCPT TO:<bob@example.com>\r\n"
DATA = b"DATA\r\n"
QUIT = b"QUIT\r\n"
MESSAGE = (
    b"From: Sender <sender@client.example.org>\r\n"
    b"To: Alice <alice@example.com>\r\n"
    b"Subject: milter test\r\n"
    b"Date: Mon, 7 Dec 2026 00:00:00 +0000\r\n"
    b"Message-ID: <milter-test@client.example.org>\r\n"
    b"X-Folded: first\r\n"
    b"\tsecond\r\n"
    b"\r\n"
    b"Hello Alice,\r\n"
    b"\r\n"
    b"a line\r\n"
    b".\r\n"
)

TRANSACTION: list[Step] = [(b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (DATA, 1), (MESSAGE, 1)]
FULL: list[Step] = [*TRANSACTION, (QUIT, 1)]
TWO_RCPTS: list[Step] = [
    (b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (RCPT_BOB, 1), (DATA, 1), (MESSAGE, 1), (QUIT, 1)
]  # fmt: skip
AFTER_CONNECT: list[Step] = [(b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (QUIT, 1)]

C, H, M, R = wire.SMFIC_CONNECT, wire.SMFIC_HELO, wire.SMFIC_MAIL, wire.SMFIC_RCPT
T, E = wire.SMFIC_DATA, wire.SMFIC_BODYEOB
REJECT: list[Packet] = [(wire.SMFIR_REJECT, b"")]
TEMPFAIL: list[Packet] = [(wire.SMFIR_TEMPFAIL, b"")]
ACCEPT: list[Packet] = [(wire.SMFIR_ACCEPT, b"")]
DISCARD: list[Packet] = [(wire.SMFIR_DISCARD, b"")]
SHUTDOWN: list[Packet] = [(wire.SMFIR_SHUTDOWN, b"")]
CONTINUE: list[Packet] = [(wire.SMFIR_CONTINUE, b"")]


def quarantine(reason: str) -> Packet:
    return wire.SMFIR_QUARANTINE, reason.encode() + b"\0"


@dataclass
class Case:
    script: Script
    steps: list[Step]
    #: master.cf ``-o`` settings of the listener (smtpd_milters is added).
    options: dict[str, str] = field(default_factory=dict)
    #: The milter is not running (its port is closed).
    down: bool = False
    #: The message is held: compare the queue file.
    held: bool = False
    #: The message is accepted and thrown away.
    discarded: bool = False
    #: Per-milter settings: smtpd_milters = { ENDPOINT, GROUP }.
    group: str = ""

    def milters(self, endpoint: str) -> str:
        return f"{{ {endpoint}, {self.group} }}" if self.group else endpoint


def answers(**by_event: list[Packet]) -> Script:
    codes = {"C": C, "H": H, "M": M, "R": R, "T": T, "E": E}
    return Script(answers={codes[k]: v for k, v in by_event.items()})


MODIFICATIONS: list[Packet] = [
    (wire.SMFIR_ADDHEADER, wire.cstrings("X-Added", "yes")),
    header_change(wire.SMFIR_INSHEADER, 0, "X-Top", "inserted at the top"),
    header_change(wire.SMFIR_INSHEADER, 2, "X-Third", "after Received and From"),
    header_change(wire.SMFIR_CHGHEADER, 1, "Subject", "changed subject"),
    header_change(wire.SMFIR_CHGHEADER, 1, "X-Folded", ""),
    header_change(wire.SMFIR_CHGHEADER, 1, "X-Missing", "added by change"),
    (wire.SMFIR_ADDHEADER, wire.cstrings("X-Multi", "one\n\ttwo")),
    (wire.SMFIR_ADDRCPT, wire.cstrings("<carol@example.com>")),
    (wire.SMFIR_ADDRCPT_PAR, wire.cstrings("<dave@example.com>", "")),
    (wire.SMFIR_DELRCPT, wire.cstrings("<bob@example.com>")),
    (wire.SMFIR_CHGFROM, wire.cstrings("<bounces@example.com>")),
    quarantine("inspect"),
    (wire.SMFIR_CONTINUE, b""),
]
REPLACED_BODY: list[Packet] = [
    (wire.SMFIR_REPLBODY, b"New body line 1\r\nNew "),
    (wire.SMFIR_REPLBODY, b"body line 2\r\n"),
    quarantine("body"),
    (wire.SMFIR_CONTINUE, b""),
]

CASES: dict[str, Case] = {
    "connect_reject": Case(answers(C=REJECT), AFTER_CONNECT),
    "connect_tempfail": Case(answers(C=TEMPFAIL), AFTER_CONNECT),
    "connect_reject_vrfy_starttls": Case(
        answers(C=REJECT),
        [(b"", 1), (EHLO, 1), (b"VRFY alice@example.com\r\n", 1), (b"STARTTLS\r\n", 1), (QUIT, 1)],
    ),
    "connect_tempfail_vrfy_starttls": Case(
        answers(C=TEMPFAIL),
        [(b"", 1), (EHLO, 1), (b"VRFY alice@example.com\r\n", 1), (b"STARTTLS\r\n", 1), (QUIT, 1)],
    ),
    "connect_replycode": Case(answers(C=replycode("550 5.7.1 Go away")), AFTER_CONNECT),
    "connect_accept": Case(answers(C=ACCEPT, E=REJECT), FULL),
    "connect_discard": Case(answers(C=DISCARD), FULL),
    "helo_reject": Case(answers(H=REJECT), AFTER_CONNECT),
    "helo_shutdown": Case(answers(H=SHUTDOWN), AFTER_CONNECT),
    "mail_reject": Case(answers(M=REJECT), [(b"", 1), (EHLO, 1), (MAIL, 1), (MAIL, 1), (QUIT, 1)]),
    "mail_tempfail": Case(answers(M=TEMPFAIL), [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)]),
    "mail_replycode": Case(
        answers(M=replycode("553 5.1.8 Sender blocked")),
        [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)],
    ),
    "mail_accept": Case(answers(M=ACCEPT, R=REJECT, E=REJECT), FULL),
    "mail_discard": Case(answers(M=DISCARD, R=REJECT, E=REJECT), FULL, discarded=True),
    "mail_shutdown": Case(answers(M=SHUTDOWN), [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)]),
    "rcpt_reject": Case(
        answers(R=REJECT), [(b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (DATA, 1), (QUIT, 1)]
    ),
    "rcpt_tempfail": Case(
        answers(R=TEMPFAIL), [(b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (QUIT, 1)]
    ),
    "rcpt_multiline": Case(
        answers(R=replycode("550-5.7.1 first line\r\n550 5.7.1 second line")),
        [(b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (QUIT, 1)],
    ),
    "rcpt_percent": Case(
        answers(R=replycode("550 5.7.1 100%% sure, 50% not")),
        [(b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (QUIT, 1)],
    ),
    "rcpt_malformed": Case(
        answers(R=replycode("250 2.0.0 fine")),
        [(b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (RCPT, 1), (QUIT, 1)],
    ),
    "rcpt_class_mismatch": Case(
        answers(R=replycode("550 4.7.1 mixed")),
        [(b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (QUIT, 1)],
    ),
    "data_reject": Case(answers(T=REJECT), [*TRANSACTION[:5], (QUIT, 1)]),
    "data_replycode": Case(
        answers(T=replycode("554 5.7.1 No data today")), [*TRANSACTION[:5], (QUIT, 1)]
    ),
    "eom_reject": Case(answers(E=REJECT), FULL),
    "eom_tempfail": Case(answers(E=TEMPFAIL), FULL),
    "eom_reject_two_recipients": Case(answers(E=REJECT), TWO_RCPTS),
    "eom_replycode": Case(answers(E=replycode("554 5.7.1 Spam message rejected")), FULL),
    "eom_multiline": Case(answers(E=replycode("550-5.7.1 first\r\n550 5.7.1 second")), FULL),
    "eom_discard": Case(answers(E=DISCARD), FULL, discarded=True),
    "eom_quarantine": Case(answers(E=[quarantine("looks like spam"), *CONTINUE]), FULL, held=True),
    "eom_shutdown": Case(answers(E=SHUTDOWN), FULL, discarded=True),
    "eom_progress": Case(
        answers(E=[(wire.SMFIR_PROGRESS, b""), (wire.SMFIR_PROGRESS, b""), *CONTINUE]), FULL
    ),
    "eom_progress_keeps_timer": Case(
        Script(answers={E: [(wire.SMFIR_PROGRESS, b"")] * 4 + CONTINUE}, pace=0.6),
        FULL,
        options={"milter_content_timeout": "1s"},
    ),
    "negotiation_timeout": Case(
        Script(delay={wire.SMFIC_OPTNEG: 3.0}),
        [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)],
        options={"milter_command_timeout": "1s"},
    ),
    "negotiation_version_conflict": Case(
        Script(version=7), [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)]
    ),
    "negotiation_actions_conflict": Case(
        Script(actions=0x400), [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)]
    ),
    "eom_modifications": Case(answers(E=MODIFICATIONS), TWO_RCPTS, held=True),
    "eom_replace_body": Case(answers(E=REPLACED_BODY), FULL, held=True),
    "eom_timeout": Case(Script(delay={E: 3.0}), FULL, options={"milter_content_timeout": "1s"}),
    "mail_timeout": Case(
        Script(delay={M: 3.0}),
        [(b"", 1), (EHLO, 1), (MAIL, 1), (MAIL, 1), (QUIT, 1)],
        options={"milter_command_timeout": "1s"},
    ),
    "mail_timeout_accept": Case(
        Script(delay={M: 3.0}),
        FULL,
        options={"milter_command_timeout": "1s", "milter_default_action": "accept"},
    ),
    "rcpt_closed": Case(
        Script(close_at=R), [(b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (RCPT_BOB, 1), (QUIT, 1)]
    ),
    "mail_garbage_reply": Case(
        Script(raw={M: wire.packet(b"z")}), [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)]
    ),
    "mail_bad_length": Case(
        Script(raw={M: struct.pack(">I", 0)}), [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)]
    ),
    "mail_extra_data": Case(
        Script(raw={M: wire.packet(wire.SMFIR_CONTINUE, b"xx")}),
        [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)],
    ),
    "rcpt_edit_too_early": Case(
        answers(R=[(wire.SMFIR_ADDHEADER, wire.cstrings("X-A", "b"))]),
        [(b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (QUIT, 1)],
    ),
    "down_tempfail": Case(Script(), [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)], down=True),
    "down_accept": Case(Script(), FULL, options={"milter_default_action": "accept"}, down=True),
    "down_reject": Case(
        Script(),
        [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)],
        options={"milter_default_action": "reject"},
        down=True,
    ),
    "down_quarantine": Case(
        Script(), FULL, options={"milter_default_action": "quarantine"}, down=True, held=True
    ),
    "group_default_action_accept": Case(Script(), FULL, group="default_action=accept", down=True),
    "group_command_timeout": Case(
        Script(delay={M: 3.0}),
        [(b"", 1), (EHLO, 1), (MAIL, 1), (QUIT, 1)],
        group="command_timeout=1s",
    ),
    "protocol_steps": Case(
        Script(
            protocol=wire.SMFIP_NOHELO
            | wire.SMFIP_NR_MAIL
            | wire.SMFIP_NOHDRS
            | wire.SMFIP_NR_RCPT,
            symlists={wire.SMFIM_ENVFROM: "{mail_addr} j", wire.SMFIM_EOM: "i {rcpt_addr}"},
        ),
        FULL,
    ),
    "old_version": Case(Script(version=2), FULL),
    "skip_body": Case(Script(answers={wire.SMFIC_HEADER: [(wire.SMFIR_SKIP, b"")]}), FULL),
}

_QID = re.compile(r"(queued as )[0-9A-Za-z]+")
_LOG_QID = re.compile(r"\b(?:[0-9A-F]{10,}|ABC\d{3})(?=: )")
_PORT = re.compile(r"127\.0\.0\.1:\d+")
_MILTER_LINE = re.compile(r"milter|Milter")


def normalize_reply(text: str) -> str:
    return _QID.sub(r"\1QID", text)


def milter_log_lines(text: str, tag: str) -> list[str]:
    """``daemon: message`` of the lines about milters (``tag`` is
    ``postfix`` or ``mailhost``), queue ids and milter ports normalized."""
    out = []
    for line in text.splitlines():
        found = re.search(rf"{tag}/(\w+)\[\d+\]: (.*)$", line)
        if found is None or not _MILTER_LINE.search(found.group(2)):
            continue
        message = _PORT.sub("127.0.0.1:PORT", _LOG_QID.sub("QID", found.group(2)))
        out.append(f"{found.group(1)}: {message}")
    return out


def sent_to_milter(received: list[Packet]) -> list[list[object]]:
    """What the milter was sent: each command with, for macros, the names
    (values depend on host and time), for OPTNEG the numbers."""
    out: list[list[object]] = []
    for cmd, data in received:
        name = cmd.decode("latin-1")
        if cmd == wire.SMFIC_MACRO:
            names = wire.split_cstrings(data[1:])[::2]
            out.append([name, data[:1].decode("latin-1"), names])
        elif cmd == wire.SMFIC_OPTNEG:
            neg = wire.Negotiation.decode(data)
            out.append([name, neg.version, neg.actions, neg.protocol])
        elif cmd in (wire.SMFIC_HEADER, wire.SMFIC_BODY, wire.SMFIC_MAIL, wire.SMFIC_RCPT):
            out.append([name, data.decode("utf-8", "replace")])
        else:
            out.append([name])
    return out


# -- non_smtpd_milters: mail from sendmail ----------------------------------------------

LOCAL_MESSAGE = (
    "From: Bob <bob@example.com>\n"
    "To: Alice <alice@example.com>\n"
    "Subject: local milter test\n"
    "Date: Mon, 7 Dec 2026 00:00:00 +0000\n"
    "Message-ID: <local-milter-test@example.com>\n"
    "\n"
    "Hello Alice,\n"
)

LOCAL_CASES: dict[str, Case] = {
    "local_accept": Case(Script(), []),
    "local_eom_reject": Case(answers(E=replycode("550 5.7.1 Local spam")), []),
    "local_eom_tempfail": Case(answers(E=TEMPFAIL), []),
    "local_mail_reject": Case(answers(M=REJECT), []),
    "local_rcpt_reject": Case(answers(R=REJECT), []),
    "local_connect_reject": Case(answers(C=REJECT), []),
    "local_eom_discard": Case(answers(E=DISCARD), []),
    "local_eom_modifications": Case(
        answers(
            E=[(wire.SMFIR_ADDHEADER, wire.cstrings("X-Local", "yes")), quarantine("x"), *CONTINUE]
        ),
        [],
        held=True,
    ),
    "local_down_tempfail": Case(Script(), [], down=True),
    "local_down_accept": Case(Script(), [], options={"milter_default_action": "accept"}, down=True),
}

_DELAYS = re.compile(r"delay=[\d.]+, delays=[\d./]+")
_LOCAL_KEPT = re.compile(r"milter|status=|non-delivery|: hold:|: discard:")


def local_log_lines(text: str, tag: str) -> list[str]:
    """``daemon: message`` of the cleanup, qmgr and delivery lines about the
    milters' verdict, queue ids, ports and delays normalized."""
    out = []
    for line in text.splitlines():
        found = re.search(rf"{tag}/(\w+)\[\d+\]: (.*)$", line)
        if found is None or not _LOCAL_KEPT.search(found.group(2)):
            continue
        if found.group(1) in ("discard", "smtp", "virtual", "local"):
            continue  # the delivery (or the bounce's) is not cleanup's doing
        message = _PORT.sub("127.0.0.1:PORT", _LOG_QID.sub("QID", found.group(2)))
        out.append(f"{found.group(1)}: {_DELAYS.sub('delay=D, delays=D', message)}")
    return out
