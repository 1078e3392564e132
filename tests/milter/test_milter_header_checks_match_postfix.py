"""milter_header_checks: with the same milter edits and the same table,
mailhost's smtpd gives the same replies, logs the same
``milter-header-ACTION`` lines and stores the same message as Postfix
3.7.11 (postfix_milter_header_checks.json, recorded by
record_postfix_milter_header_checks.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.milter.cases import milter_log_lines, sent_to_milter
from tests.milter.harness import smtpd
from tests.milter.header_check_cases import HC_CASES, LOCAL_HC_CASES, TABLE
from tests.milter.peer import ScriptedMilter
from tests.milter.test_local_milter_matches_postfix import check_local_case
from tests.milter.test_milter_matches_postfix import comparable, kept, queue_view
from tests.smtpd.dialogues import run_dialogue

RECORDED = json.loads((Path(__file__).parent / "postfix_milter_header_checks.json").read_text())

#: What each case leaves in the message's actions (Postfix's cleanup flags
#: and meta records, which the recording shows only through the log).
ACTIONS = {
    "hc_hold": {"hold": "spam flag from milter"},
    "hc_discard": {"discard": "spam flag from milter"},
    "hc_redirect": {"redirect": "carol@example.com"},
    "hc_change_header": {"hold": "changed subject"},
    "hc_inserted_header": {"discard": "spam flag from milter"},
    "hc_ignore": {"hold": "milter triggers HOLD action"},
    "hc_replace": {"hold": "milter triggers HOLD action"},
    "hc_warn": {"hold": "milter triggers HOLD action"},
}


@pytest.mark.parametrize("name", list(HC_CASES))
def test_milter_header_checks_case_matches_postfix(name: str, tmp_path: Path) -> None:
    case = HC_CASES[name]
    recorded = RECORDED[name]
    table = tmp_path / "milter_header_checks"
    table.write_text(TABLE)
    milter = ScriptedMilter(case.script).start()
    settings = {"smtpd_milters": milter.endpoint, "milter_header_checks": f"regexp:{table}"}
    try:
        with smtpd(settings) as server:
            replies = run_dialogue(server.port, case.steps)
            deadline = time.monotonic() + 5
            while "disconnect from" not in server.log() and time.monotonic() < deadline:
                time.sleep(0.02)
            log = milter_log_lines(server.log(), "mailhost")
            queue = server.queue
            messages = server.cleanup.messages
    finally:
        milter.stop()
    assert replies == recorded["replies"]
    assert kept(log) == kept(recorded["log"])
    assert comparable(sent_to_milter(milter.received)) == comparable(recorded["sent"])
    if case.held:
        (queued,) = queue.committed()
        assert queue_view(queued) == recorded["queue"]
    expected = ACTIONS.get(name, {})
    accepted = ["250 2.0.0 Ok: queued as QID"] in recorded["replies"]
    assert len(messages) == (1 if accepted else 0)
    for message in messages:
        actions = message.actions
        assert actions.hold == expected.get("hold")
        assert actions.discard == expected.get("discard")
        assert actions.redirect == expected.get("redirect")


LOCAL_RECORDED = json.loads(
    (Path(__file__).parent / "postfix_local_milter_header_checks.json").read_text()
)


@pytest.mark.parametrize("name", list(LOCAL_HC_CASES))
def test_local_milter_header_checks_case_matches_postfix(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    table = tmp_path / "milter_header_checks"
    table.write_text(TABLE)
    check_local_case(
        LOCAL_HC_CASES[name],
        LOCAL_RECORDED[name],
        tmp_path,
        monkeypatch,
        caplog,
        f"milter_header_checks = regexp:{table}\n",
    )
