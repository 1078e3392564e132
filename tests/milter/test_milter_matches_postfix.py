"""With the same milter answers, mailhost's smtpd gives the client the same
replies, writes the same milter log lines, sends the milter the same
negotiation, macros and events, and stores the same edited message as
Postfix 3.7.11 (postfix_milter.json, recorded by record_postfix_milter.py
with the milter of peer.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.milter.cases import CASES, milter_log_lines, sent_to_milter
from tests.milter.harness import Queued, smtpd
from tests.milter.peer import ScriptedMilter
from tests.milter.record_postfix_milter import without_received
from tests.smtpd.dialogues import run_dialogue
from tests.support.net import free_port

RECORDED = json.loads((Path(__file__).parent / "postfix_milter.json").read_text())

#: Macros Postfix fills from its address resolver (transport and nexthop),
#: which mailhost does not send (docs/milter.md).
RESOLVER_MACROS = {"{mail_host}", "{mail_mailer}", "{rcpt_host}", "{rcpt_mailer}"}


def comparable(sent: list[list[object]]) -> list[list[object]]:
    """What the milter was sent, without the resolver macros and without
    the ABORT/QUIT packets after the last event (Postfix sends ABORT twice
    after a message, from smtpd and from cleanup)."""
    out: list[list[object]] = []
    for item in sent:
        if item[0] == "D":
            names = item[2]
            assert isinstance(names, list)
            out.append([item[0], item[1], [n for n in names if n not in RESOLVER_MACROS]])
        else:
            out.append(item)
    while out and out[-1][0] in ("A", "Q"):
        out.pop()
    return out


def queue_view(queued: Queued) -> dict[str, object]:
    assert queued.submission is not None
    content = [line.decode() for line in queued.content]
    return {
        "sender": queued.submission.sender,
        "recipients": [r.final for r in queued.submission.recipients],
        "content": without_received(content),
    }


def kept(lines: list[str]) -> list[str]:
    """Postfix logs ``message-id=`` before a milter's end-of-message verdict;
    mailhost's cleanup logs it only for a stored message: left out."""
    return [line for line in lines if "message-id=" not in line]


#: Cases where mailhost differs from Postfix on purpose (docs/milter.md).
DIFFERENT = {"eom_shutdown"}


@pytest.mark.parametrize("name", [name for name in CASES if name not in DIFFERENT])
def test_milter_case_matches_postfix(name: str) -> None:
    case = CASES[name]
    recorded = RECORDED[name]
    milter = None if case.down else ScriptedMilter(case.script).start()
    endpoint = milter.endpoint if milter else f"inet:127.0.0.1:{free_port()}"
    try:
        with smtpd({"smtpd_milters": case.milters(endpoint), **case.options}) as server:
            replies = run_dialogue(server.port, case.steps)
            deadline = time.monotonic() + 5
            while "disconnect from" not in server.log() and time.monotonic() < deadline:
                time.sleep(0.02)
            log = milter_log_lines(server.log(), "mailhost")
            queue = server.queue
            messages = server.cleanup.messages
    finally:
        if milter is not None:
            milter.stop()
    assert replies == recorded["replies"]
    assert kept(log) == kept(recorded["log"])
    if milter is not None:
        assert comparable(sent_to_milter(milter.received)) == comparable(recorded["sent"])
    if case.held:
        (queued,) = queue.committed()
        assert queue_view(queued) == recorded["queue"]
        assert messages[0].actions.hold == "milter triggers HOLD action"
    elif messages:
        assert messages[0].actions.hold is None
    if case.discarded:
        assert messages[0].actions.discard == "milter triggers DISCARD action"
    elif messages:
        assert messages[0].actions.discard is None


def test_shutdown_at_end_of_message_is_421_and_nothing_is_acknowledged() -> None:
    # Postfix 3.7.11 answers 250 and stores nothing (recorded as eom_shutdown);
    # mailhost refuses with 421 and disconnects, so the client keeps the mail.
    case = CASES["eom_shutdown"]
    milter = ScriptedMilter(case.script).start()
    try:
        with smtpd({"smtpd_milters": case.milters(milter.endpoint), **case.options}) as server:
            replies = run_dialogue(server.port, case.steps)
            deadline = time.monotonic() + 5
            while "disconnect from" not in server.log() and time.monotonic() < deadline:
                time.sleep(0.02)
            log = milter_log_lines(server.log(), "mailhost")
            queue = server.queue
    finally:
        milter.stop()
    recorded = RECORDED["eom_shutdown"]["replies"]
    end = recorded.index(["250 2.0.0 Ok: queued as QID"])
    assert replies[:end] == recorded[:end]
    assert replies[end] == ["421 4.7.0 Server closing connection"]
    assert not queue.committed()
    assert any("milter-reject: END-OF-MESSAGE" in line and "4.7.0 Server closing connection"
               in line for line in log)  # fmt: skip
