"""The check_policy_service cases recorded from Postfix 3.7.11
(record_postfix_policy.py) and replayed against mailhost
(test_policy_matches_postfix.py): what a policy server of our own
(policy_peer.py) does, how the service is named in the restriction list,
and the SMTP dialogue around it.

In ``service`` the text ``SVC`` stands for ``inet:127.0.0.1:PORT`` of the
case's peer (a port nobody listens on for ``behaviour = "none"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PolicyCase:
    behaviour: str = "answer"
    reply: bytes = b"action=DUNNO\n\n"
    service: str = "SVC"
    #: the restriction list the service is put in
    parameter: str = "smtpd_recipient_restrictions"
    #: RCPT commands (each ``RCPT TO:<bob@example.com>``)
    rcpts: int = 1
    #: send DATA and a message after the RCPTs
    data: bool = False
    #: ``-o`` settings of the listener besides the restriction list
    extra: tuple[tuple[str, str], ...] = ()
    #: STARTTLS (and EHLO again) before MAIL
    tls: bool = False


CASES: dict[str, PolicyCase] = {
    "dunno_reuses_the_connection": PolicyCase(rcpts=2),
    "reject_with_text": PolicyCase(reply=b"action=REJECT Go away\n\n"),
    "numeric_450_greylist": PolicyCase(
        reply=b"action=450 4.2.0 Greylisted, see http://postgrey.example/help.html\n\n"
    ),
    "defer_if_permit": PolicyCase(reply=b"action=DEFER_IF_PERMIT Service temporarily down\n\n"),
    "ok": PolicyCase(reply=b"action=OK\n\n"),
    "attributes_around_the_action": PolicyCase(
        reply=b"foo=bar\naction=REJECT extra first\nmore=1\n\n"
    ),
    "first_action_wins": PolicyCase(reply=b"action=DUNNO\naction=REJECT second\n\n"),
    "empty_action": PolicyCase(reply=b"action=\n\n"),
    "no_action_attribute": PolicyCase(reply=b"hello=world\n\n"),
    "action_without_value": PolicyCase(reply=b"action\n\n"),
    "malformed_utf8": PolicyCase(reply=b"action=REJECT caf\xe9\n\n"),
    "lookup_table_in_answer": PolicyCase(reply=b"action=hash:/etc/postfix/x\n\n"),
    "silent_server_times_out": PolicyCase(
        behaviour="silent", service="{ SVC, timeout=1s, try_limit=1 }"
    ),
    "server_closes_after_request": PolicyCase(behaviour="close"),
    "connection_refused": PolicyCase(behaviour="none"),
    "refused_with_default_dunno": PolicyCase(
        behaviour="none", service="{ SVC, default_action=DUNNO, try_limit=1 }"
    ),
    "refused_with_braced_default": PolicyCase(
        behaviour="none", service="{ SVC, try_limit=1, { default_action = 450 4.7.1 Try later } }"
    ),
    "refused_with_main_cf_default": PolicyCase(
        behaviour="none",
        extra=(
            ("smtpd_policy_service_default_action", "DEFER_IF_PERMIT policy down"),
            ("smtpd_policy_service_try_limit", "1"),
        ),
    ),
    "missing_argument": PolicyCase(behaviour="none", service=""),
    "request_limit_one": PolicyCase(service="{ SVC, request_limit=1 }", rcpts=2),
    "server_closes_after_answer": PolicyCase(behaviour="answer-close", rcpts=2),
    "policy_context_sent": PolicyCase(service="{ SVC, policy_context=submission }"),
    "client_stage_without_delay": PolicyCase(
        parameter="smtpd_client_restrictions", extra=(("smtpd_delay_reject", "no"),)
    ),
    "helo_stage_without_delay": PolicyCase(
        parameter="smtpd_helo_restrictions", extra=(("smtpd_delay_reject", "no"),)
    ),
    "mail_stage_without_delay": PolicyCase(
        parameter="smtpd_sender_restrictions", extra=(("smtpd_delay_reject", "no"),)
    ),
    "sender_stage_with_delay": PolicyCase(parameter="smtpd_sender_restrictions", rcpts=2),
    "encryption_attributes_after_starttls": PolicyCase(tls=True),
    "data_stage": PolicyCase(parameter="smtpd_data_restrictions", rcpts=2, data=True),
    "end_of_data_stage": PolicyCase(parameter="smtpd_end_of_data_restrictions", rcpts=2, data=True),
    "data_stage_reject": PolicyCase(
        parameter="smtpd_data_restrictions", reply=b"action=REJECT no data\n\n", data=True
    ),
}

#: The dialogue's fixed parts.
HELO = "client.example.org"
SENDER = "sender@client.example.org"
RECIPIENT = "bob@example.com"
SIZE = 1234
MESSAGE = "Subject: policy\r\n\r\nhello\r\n"

#: Request attributes whose values differ from run to run (ports, ids): only
#: whether they are empty is compared.
VARIABLE = frozenset({"client_port", "server_port", "instance", "queue_id"})


def attribute(name: str, value: str) -> list[str]:
    """A request attribute as compared: variable values become ``SET`` (or stay empty)."""
    if name in VARIABLE:
        return [name, "SET" if value not in ("", "0") else value]
    return [name, value]


_PID = re.compile(r"^.*?(postfix|mailhost)/smtpd\[\d+\]: ")
_QID = re.compile(r"^(?!NOQUEUE)[0-9A-Z]{6,16}: ")


def service_text(case: PolicyCase, port: int) -> str:
    return case.service.replace("SVC", f"inet:127.0.0.1:{port}")


def normalise(line: str, port: int) -> str:
    """A log line without its prefix, queue id or the peer's port."""
    line = _PID.sub("", line)
    line = _QID.sub("QID: ", line)
    line = re.sub(r"queued as \w+", "queued as QID", line)
    return line.replace(f"127.0.0.1:{port}", "127.0.0.1:PORT")


def interesting(line: str) -> bool:
    """The smtpd log lines a case compares: warnings and decisions."""
    if "dict_nis_init" in line:
        return False  # Postfix's own start-up noise
    return any(w in line for w in ("warning:", ": reject:", ": reject_warning:"))
