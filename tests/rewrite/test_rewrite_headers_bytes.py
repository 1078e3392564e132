"""rewrite_headers reads the header section on the bytes as split_headers
reads it decoded: the same result for any lines (the reference below is the
decoded reading it replaced)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from mailhost.resolve.header_addresses import (
    RECIPIENT_HEADERS,
    SENDER_HEADERS,
    Header,
    HeaderMemo,
    format_header,
    rewrite_headers,
    rewrite_value,
    split_headers,
)


async def _upper(address: str, sender: bool) -> str:
    return ("S" if sender else "R") + address.upper()


async def _reference(lines: list[bytes]) -> list[bytes]:
    try:
        section = lines.index(b"")
    except ValueError:
        section = len(lines)
    text = [line.decode("utf-8", "surrogateescape") for line in lines[:section]]
    headers, end = split_headers(text)
    out: list[bytes] = []
    changed = False
    for item in headers:
        if isinstance(item, str):
            out.append(item.encode("utf-8", "surrogateescape"))
            continue
        assert isinstance(item, Header)
        lower = item.name.lower()
        new_lines = item.lines
        if lower in SENDER_HEADERS or lower in RECIPIENT_HEADERS:
            sender = lower in SENDER_HEADERS

            async def one(address: str, sender: bool = sender) -> str:
                return await _upper(address, sender)

            value = await rewrite_value(item.value, one)
            if value is not None:
                new_lines = format_header(item.name, value)
                changed = True
        out.extend(line.encode("utf-8", "surrogateescape") for line in new_lines)
    return out + lines[end:] if changed else lines


_line = st.one_of(
    st.sampled_from(
        [
            b"From: a@example.com",
            b"to: B <b@example.org>, c@x",
            b"Cc: d@y",
            b"Subject: hello",
            b"Received: from x",
            b" folded@line.example",
            b"\tmore <e@z>",
            b"",
            b"stray line",
            b"Reply-To: \xff\xfe@bad",
            b"X-Other: f@w",
        ]
    ),
    st.binary(max_size=30),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_line, max_size=12))
def test_rewrite_headers_reads_the_bytes_as_split_headers(lines: list[bytes]) -> None:
    async def both() -> None:
        memo: HeaderMemo = {}
        expected = await _reference(list(lines))
        assert await rewrite_headers(list(lines), _upper) == expected
        assert await rewrite_headers(list(lines), _upper, memo) == expected
        assert await rewrite_headers(list(lines), _upper, memo) == expected  # from the memo

    asyncio.run(both())
