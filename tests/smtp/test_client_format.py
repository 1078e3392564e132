"""Pure parts of the SMTP client: DATA encoding and reply texts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailhost.delivery.smtp_client import Reply, smtp_body, xtext

lines = st.lists(
    st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=8
)


@given(lines)
def test_body_is_crlf_dot_stuffed_and_reversible(content: list[bytes]) -> None:
    message = b"".join(line + b"\n" for line in content)
    wire = smtp_body(message)
    assert wire.endswith(b".\r\n")
    sent = wire[:-3].split(b"\r\n")[:-1] if content else []
    assert [line[1:] if line.startswith(b".") else line for line in sent] == content
    assert all(not line.startswith(b".") or line.startswith(b"..") for line in sent)
    assert b"\n" not in wire.replace(b"\r\n", b"")


def test_body_examples() -> None:
    assert smtp_body(b"a\n.b\n\n") == b"a\r\n..b\r\n\r\n.\r\n"
    assert smtp_body(b"") == b".\r\n"


def test_reply_text_and_dsn() -> None:
    r = Reply(550, ("5.1.1 <x@y>: Recipient address rejected", "5.1.1 second line"))
    assert r.text == "550 5.1.1 <x@y>: Recipient address rejected second line"
    assert r.dsn == "5.1.1"
    assert Reply(451, ("try later",)).dsn == "4.0.0"
    assert Reply(250, ("4.1.1 odd",)).dsn == "2.0.0"


@given(st.text(max_size=20))
def test_xtext_is_ascii_printable(value: str) -> None:
    encoded = xtext(value)
    assert all(33 <= ord(c) <= 126 and c != "=" for c in encoded)
