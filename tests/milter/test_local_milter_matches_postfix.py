"""non_smtpd_milters: mail submitted with ``mailhost sendmail`` and taken in
by one pickup pass gets, from the same scripted milter, what Postfix 3.7.11
did with a message from its sendmail (postfix_local_milter.json, recorded by
record_postfix_local_milter.py): the milter sees the same events, macros
and content; cleanup logs the same milter lines; a 5xx bounces the message,
a 4xx leaves the maildrop file; a held message has the same queue file."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mailhost.log import postfix_text
from mailhost.queue.layout import HOLD
from mailhost.queue.store import QueueStore
from tests.milter.cases import LOCAL_CASES, LOCAL_MESSAGE, Case, local_log_lines, sent_to_milter
from tests.milter.peer import ScriptedMilter
from tests.milter.test_milter_matches_postfix import comparable
from tests.sendmail.helpers import pick_all, submit, write_config
from tests.support.net import free_port

RECORDED = json.loads((Path(__file__).parent / "postfix_local_milter.json").read_text())

SITE = """\
virtual_mailbox_domains = example.com
virtual_mailbox_maps = inline:{alice@example.com=a, bob@example.com=b}
"""


def maillog(records: list[logging.LogRecord]) -> str:
    return "\n".join(
        f"mailhost/{getattr(r, 'daemon', None) or r.name.rsplit('.', 1)[-1]}[0]: {postfix_text(r)}"
        for r in records
    )


def kept(lines: list[str]) -> list[str]:
    """Without message-id= lines (logged at other moments by mailhost's
    cleanup) and the bounce notice's own line (its queue id differs)."""
    return [line for line in lines if "message-id=" not in line and "non-delivery" not in line]


@pytest.mark.parametrize("name", list(LOCAL_CASES))
def test_local_milter_case_matches_postfix(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    check_local_case(LOCAL_CASES[name], RECORDED[name], tmp_path, monkeypatch, caplog)


def check_local_case(
    case: Case,
    recorded: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    extra_cf: str = "",
) -> None:
    """Submit LOCAL_MESSAGE with ``case``'s milter and settings (and
    ``extra_cf``), pick it up, compare with what Postfix did."""
    milter = None if case.down else ScriptedMilter(case.script).start()
    endpoint = milter.endpoint if milter else f"inet:127.0.0.1:{free_port()}"
    options = "".join(f"{k} = {v}\n" for k, v in case.options.items())
    config = write_config(
        tmp_path,
        SITE + f"non_smtpd_milters = {case.milters(endpoint)}\n" + options + extra_cf,
    )
    try:
        done = submit(
            config, ["-f", "bob@example.com", "alice@example.com"], LOCAL_MESSAGE, monkeypatch
        )
        assert done.status == 0, done.stderr
        caplog.set_level(logging.INFO, logger="mailhost")
        asyncio.run(pick_all(config))
    finally:
        if milter is not None:
            milter.stop()
    log = local_log_lines(maillog(caplog.records), "mailhost")
    assert kept(log) == kept(recorded["log"])
    if milter is not None:
        assert comparable(sent_to_milter(milter.received)) == comparable(recorded["sent"])
    assert len(list((tmp_path / "queue" / "maildrop").iterdir())) == len(recorded["maildrop"])
    if case.held:
        store = QueueStore(tmp_path / "queue")
        (entry,) = asyncio.run(store.list((HOLD,)))
        qf = asyncio.run(store.read_entry(entry))
        content = [line.decode() for line in qf.lines()]
        assert {
            "sender": qf.envelope.sender,
            "recipients": [r.address for r in qf.envelope.recipients],
            "content": content[2:],  # cleanup's Received: header (two lines)
        } == recorded["queue"]
