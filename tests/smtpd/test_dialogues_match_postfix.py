"""Every reply and every outcome log line of the dialogues in dialogues.py
equals what Postfix 3.7.11's smtpd produced with the same main.cf and master.cf
listeners (postfix_dialogues.json, recorded by record_postfix_dialogues.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.smtpd.dialogues import CASES, run_dialogue, smtpd_log_lines
from tests.support.server import ServerProcess

RECORDED = json.loads((Path(__file__).parent / "postfix_dialogues.json").read_text())


@pytest.mark.postfix
@pytest.mark.parametrize("name", list(CASES))
def test_dialogue_matches_postfix(server: ServerProcess, name: str) -> None:
    listener, steps = CASES[name]
    server.mark()
    assert server.proc is not None
    replies = run_dialogue(server.ports[listener], steps, server_pid=server.proc.pid)
    assert replies == RECORDED[name]["replies"]
    text = server.wait_log("disconnect from")
    assert smtpd_log_lines(text, "mailhost/smtpd") == RECORDED[name]["log"]
