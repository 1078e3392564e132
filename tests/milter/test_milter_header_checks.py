"""milter_header_checks rules that come from Postfix 3.7's cleanup_milter.c
and header_body_checks.c and that the recorded cases do not reach: PREPEND
is refused, PASS is unsupported, the message-level actions stop after a
REDIRECT, a header deletion is not looked up, a table failure is a 451."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from mailhost.cleanup.inspect import LogContext
from mailhost.cleanup.milter_header_checks import HeaderCheckRun
from mailhost.config import Config
from mailhost.milter.settings import MilterSettings
from mailhost.milter.verdict import AddHeader, ChangeHeader, DeleteRecipient, InsertHeader
from mailhost.reply import QUEUE_WRITE_ERROR

CONTEXT = LogContext("client.example.org[192.0.2.1]", "s@example.org", "r@example.com", "ESMTP")


def checks(tmp_path: Path, table: str) -> HeaderCheckRun:
    path = tmp_path / "hc"
    path.write_text(table)
    cfg = Config(Path("/nonexistent"), {"milter_header_checks": f"regexp:{path}"})
    maps = MilterSettings.from_config(cfg).header_checks
    assert maps is not None
    return HeaderCheckRun(maps, "QID", CONTEXT)


def test_not_set_means_no_tables() -> None:
    assert MilterSettings.from_config(Config(Path("/nonexistent"), {})).header_checks is None


def test_prepend_is_logged_and_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = checks(tmp_path, "/^X-A:/ PREPEND X-B: before\n")
    caplog.set_level(logging.INFO, logger="mailhost")
    edit = asyncio.run(run.checked(AddHeader("X-A", " yes")))
    assert edit == AddHeader("X-A", " yes")
    assert "QID: milter-header-prepend: header X-A: yes from client.example.org" in caplog.text
    assert "the milter_header/body_checks prepend action is not implemented" in caplog.text


def test_pass_is_unsupported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = checks(tmp_path, "/^X-A:/ PASS\n")
    edit = asyncio.run(run.checked(AddHeader("X-A", " yes")))
    assert edit == AddHeader("X-A", " yes")
    assert "unsupported command in milter_header_checks map: PASS" in caplog.text


def test_after_redirect_message_actions_do_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = "/^X-A:/ REDIRECT x@example.com\n/^X-B:/ HOLD\n/^X-C:/ REPLACE X-C: new\n"
    run = checks(tmp_path, table)
    caplog.set_level(logging.INFO, logger="mailhost")

    async def go() -> list[object]:
        return [
            await run.checked(AddHeader("X-A", " 1")),
            await run.checked(InsertHeader(1, "X-B", " 2")),
            await run.checked(ChangeHeader(1, "X-C", " 3")),
        ]

    edits = asyncio.run(go())
    assert edits == [
        AddHeader("X-A", " 1"),
        InsertHeader(1, "X-B", " 2"),
        ChangeHeader(1, "X-C", " new"),
    ]
    assert run.result.actions.redirect == "x@example.com"
    assert run.result.actions.hold is None
    assert "milter-header-hold" not in caplog.text
    assert "milter-header-replace: header X-C: 3" in caplog.text


def test_ignore_drops_the_header_and_deletions_are_not_looked_up(tmp_path: Path) -> None:
    run = checks(tmp_path, "/^X-A/ IGNORE\n")

    async def go() -> list[object]:
        return [
            await run.checked(AddHeader("X-A", " 1")),
            await run.checked(ChangeHeader(1, "X-A", "")),
            await run.checked(DeleteRecipient("<a@example.com>")),
        ]

    assert asyncio.run(go()) == [
        None,
        ChangeHeader(1, "X-A", ""),
        DeleteRecipient("<a@example.com>"),
    ]


def test_a_table_failure_is_a_temporary_refusal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = Config(Path("/nonexistent"), {"milter_header_checks": "fail:broken"})
    maps = MilterSettings.from_config(cfg).header_checks
    assert maps is not None
    run = HeaderCheckRun(maps, "QID", CONTEXT)
    assert asyncio.run(run.checked(AddHeader("X-A", " 1"))) is None
    assert run.stopped
    assert run.result.reject == QUEUE_WRITE_ERROR
    assert "QID: milter_header_checks map lookup problem" in caplog.text
