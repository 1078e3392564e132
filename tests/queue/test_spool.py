"""The content of a message being received (mailhost.queue.spool): the
header section in memory, the body in a bounded buffer and then a spool
file; every way of reading it back gives the lines that went in."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailhost.delivery.maildir_names import vsize
from mailhost.delivery.text import SpooledText, as_bytes, lf_only, prepend, text_vsize
from mailhost.queue import qfile
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.queue.spool import Body, Content
from mailhost.queue.store import QueueStore

# Content lines: any bytes but LF (a CR may end a line or sit inside it).
lines_strategy = st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")), max_size=40)


@given(lines_strategy, st.integers(1, 300), st.integers(0, 400))
@settings(max_examples=200, deadline=None)
def test_every_reading_gives_the_lines_back(
    lines: list[bytes], buffer: int, header_limit: int
) -> None:
    directory = Path(os.environ.get("TMPDIR", "/tmp"))
    body = Body(directory, buffer_size=buffer)
    content = Content.of_lines(lines, header_size_limit=header_limit, body=body)
    try:
        assert content.lines() == lines
        assert sum(len(line) + 1 for line in content.header) <= max(header_limit, 0) or not (
            header_limit
        )
        assert b"".join(body.chunks()) == b"".join(
            line + b"\n" for line in lines[len(content.header) :]
        )
        assert content.size() == qfile.postfix_size(lines)
        assert all(len(chunk) <= buffer for chunk in body.chunks()) or not body.spooled

        async def read_async() -> list[bytes]:
            return [line async for line in body.alines()]

        assert asyncio.run(read_async()) == lines[len(content.header) :]
        whole = b"".join(line + b"\n" for line in lines)
        text = SpooledText(b"".join(line + b"\n" for line in content.header), body)
        for form, expected in ((text, whole), (lf_only(text), whole.replace(b"\r\n", b"\n"))):
            with_head = prepend(b"Delivered-To: x\n", form)
            assert as_bytes(with_head) == b"Delivered-To: x\n" + expected
            assert len(with_head) == len(expected) + 16
            assert text_vsize(with_head) == vsize(b"Delivered-To: x\n" + expected)
            out = directory / f"out.{os.getpid()}"
            fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"#")
                with_head.write_to(fd)  # type: ignore[union-attr]
            finally:
                os.close(fd)
            assert out.read_bytes() == b"#Delivered-To: x\n" + expected
            out.unlink()
    finally:
        content.discard()
    assert body.path is None or not body.path.exists()


def test_a_body_past_its_buffer_is_in_a_spool_file_of_incoming(tmp_path: Path) -> None:
    body = Body(tmp_path, buffer_size=10)
    for _ in range(3):
        body.append_sync(b"0123456789")
    body.finish_sync()
    assert body.spooled
    assert body.path is not None
    assert body.path.parent == tmp_path
    assert body.path.name.endswith(".body")
    assert body.path.read_bytes() == b"0123456789\n" * 3
    body.discard()
    assert list(tmp_path.iterdir()) == []


async def test_a_queue_file_written_from_a_spool_verifies(tmp_path: Path) -> None:
    store = QueueStore(tmp_path)
    await store.setup()
    lines = [b"Subject: big", b"", *[b"%d" % i * 50 for i in range(2000)]]
    body = Body(tmp_path / "incoming", buffer_size=4096)
    content = Content.of_lines(lines, body=body)
    txn = await store.begin()
    envelope = Envelope("s@client.test", (Recipient("a@example.com", "a@example.com"),), 0.0)
    size = await txn.commit(envelope, content)
    assert size == qfile.postfix_size(lines)
    with txn.path.open("rb") as f:
        assert qfile.read(f).lines() == lines
    content.discard()
    # Only the queue file is left: the spool file went with the content.
    assert [p.name for p in (tmp_path / "incoming").iterdir()] == [txn.queue_id]
