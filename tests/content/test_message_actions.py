"""cleanup applies the actions smtpd's access maps put in ``Message.actions``
at the queue write, as it applies its own checks' (the production queue
store on a temporary directory, no server): HOLD into ``hold``, DISCARD
queues nothing, REDIRECT and FILTER in the queue file (FILTER defaulting to
main.cf content_filter), BCC as one more recipient, PREPEND above smtpd's
Received: header and inspected by header_checks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from mailhost.cleanup.inspect import ContentChecks
from mailhost.cleanup.production import StoreSink
from mailhost.cleanup.seams import ClientInfo, ExpansionFailed, MessageActions
from mailhost.cleanup.service import Cleanup, Message
from mailhost.queue.layout import HOLD, INCOMING
from mailhost.queue.qfile import QueueFile
from mailhost.queue.store import QueueStore
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

CLIENT = ClientInfo("localhost", "127.0.0.1", 4000, "client.test", "ESMTP")


class Identity:
    async def expand(self, recipient: str) -> Sequence[str]:
        return [recipient]


def message(actions: MessageActions, subject: str = "hello") -> Message:
    return Message(
        sender="s@client.test",
        recipients=["alice@example.com", "bob@example.com"],
        client=CLIENT,
        lines=[*f"Subject: {subject}".encode().split(b"\r\n"), b"", b"body"],
        received=[b"Received: from client.test (localhost [127.0.0.1])"],
        arrival_time=0.0,
        actions=actions,
    )


def run(
    tmp_path: Path, actions: MessageActions, checks: ContentChecks | None = None,
    content_filter: str = "", subject: str = "hello",
) -> tuple[str, QueueStore]:  # fmt: skip
    store = QueueStore(tmp_path / "queue")
    store.create_directories()
    cleanup = Cleanup(StoreSink(store), Identity(), checks=checks, content_filter=content_filter)

    async def go() -> str:
        txn = await cleanup.open()
        await cleanup.submit(txn, message(actions, subject))
        return txn.queue_id

    return asyncio.run(go()), store


def read(store: QueueStore, qid: str, queue: str = INCOMING) -> QueueFile:
    return asyncio.run(store.read(qid, queues=(queue,)))[1]


def test_hold_writes_into_the_hold_queue(tmp_path: Path) -> None:
    qid, _ = run(tmp_path, MessageActions(hold="access hold"))
    assert (tmp_path / "queue" / HOLD / qid).exists()
    assert not (tmp_path / "queue" / INCOMING / qid).exists()


def test_discard_queues_nothing(tmp_path: Path) -> None:
    qid, _ = run(tmp_path, MessageActions(discard="access discard"))
    assert not list((tmp_path / "queue").glob(f"*/{qid}"))


def test_redirect_filter_bcc_and_prepend_reach_the_queue_file(tmp_path: Path) -> None:
    actions = MessageActions(
        redirect="carol@example.com", filter="smtp:[127.0.0.1]:10024",
        bcc=["dave@example.com"], prepend=["X-Access: one", "X-Access: two"],
    )  # fmt: skip
    qid, store = run(tmp_path, actions, content_filter="scan:")
    qf = read(store, qid)
    assert qf.envelope.redirect == "carol@example.com"
    assert qf.envelope.content_filter == "smtp:[127.0.0.1]:10024"
    assert [(r.address, r.notify) for r in qf.envelope.recipients] == [
        ("alice@example.com", ()), ("bob@example.com", ()), ("dave@example.com", ("NEVER",)),
    ]  # fmt: skip
    assert qf.lines()[:3] == [
        b"X-Access: one", b"X-Access: two", b"Received: from client.test (localhost [127.0.0.1])",
    ]  # fmt: skip


def test_content_filter_is_the_default(tmp_path: Path) -> None:
    qid, store = run(tmp_path, MessageActions(), content_filter="scan:[127.0.0.1]:10025")
    assert read(store, qid).envelope.content_filter == "scan:[127.0.0.1]:10025"


def checks(tmp_path: Path, rules: str) -> ContentChecks:
    source = tmp_path / "header_checks"
    source.write_text(rules)
    maps = Maps("header_checks", [TableRegistry().open(f"regexp:{source}")])
    return ContentChecks(maps, maps, maps, Maps("body_checks", []))


def test_smtpd_prepend_is_inspected_and_a_later_filter_wins(tmp_path: Path) -> None:
    rules = "/^X-Access: scan me/ FILTER scan:[127.0.0.1]:10026\n"
    actions = MessageActions(filter="smtp:[h]", prepend=["X-Access: scan me"])
    qid, store = run(tmp_path, actions, checks(tmp_path, rules))
    assert read(store, qid).envelope.content_filter == "scan:[127.0.0.1]:10026"


def test_a_check_reject_removes_the_queue_file(tmp_path: Path) -> None:
    rules = "/^Subject: no/ REJECT not this\n"
    with pytest.raises(ExpansionFailed) as caught:
        run(tmp_path, MessageActions(), checks(tmp_path, rules), subject="no")
    assert str(caught.value.reply) == "550 5.7.1 not this"
    assert not [p for p in (tmp_path / "queue").glob("*/*") if p.is_file()]


def test_a_failing_check_table_defers_naming_its_parameter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = TableRegistry()
    broken = Maps("mime_header_checks", [registry.open(f"regexp:{tmp_path}/missing")])
    fine = Maps("header_checks", [])
    checks = ContentChecks(fine, broken, fine, Maps("body_checks", []))
    with pytest.raises(ExpansionFailed) as caught:
        run(tmp_path, MessageActions(), checks, subject="x\r\nContent-Type: text/plain")
    assert str(caught.value.reply) == "451 4.3.0 Error: queue file write error"
    assert "mime_header_checks map lookup problem -- message not accepted, try again later" in (
        caplog.text
    )
