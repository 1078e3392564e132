"""The report message on its own: parsed back with the standard email
package, the returned original byte for byte, the templates as Postfix
prints them."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mailhost.bounce import dsn
from mailhost.bounce.templates import DELAY, FAILURE, TEMPLATES, Template
from tests.bounce.helpers import PARSE, recorded

ORIGIN = dsn.Origin("mx.example.com", "example.com", "mailhost")
ORIGINAL = b"Received: from client.test\nSubject: hello\nMessage-ID: <m@client.test>\n\nbody line\n"


def report(**changes: object) -> dsn.Report:
    values: dict[str, object] = {
        "kind": "failure",
        "template": FAILURE,
        "boilerplate": "This is the mail system at host mx.example.com.\n",
        "postmaster_copy": False,
        "queue_id": "4B37020E535",
        "sender": "s@client.test",
        "arrival_time": 1_796_152_432.0,
        "envid": "",
        "recipients": (
            dsn.RecipientReport("gone@example.com", "gone@example.com", "", "5.1.1", "User unknown"),
            dsn.RecipientReport(
                "bob@example.com", "sales@example.com", "rfc822;Sales@Example.com", "5.2.2",
                "maildir delivery failed: error writing message: Disk quota exceeded",
            ),
        ),
        "headers_only": False,
    }  # fmt: skip
    values.update(changes)
    return dsn.Report(**values)  # type: ignore[arg-type]


def render(rep: dsn.Report, content: bytes = ORIGINAL) -> bytes:
    msg = dsn.build(
        rep, ORIGIN, recipient="s@client.test", notice_id="5C0DE20E536", now=1_796_152_433.0,
        content=content,
    )  # fmt: skip
    return b"\n".join(dsn.to_lines(msg)) + b"\n"


def test_report_is_a_valid_multipart_report() -> None:
    msg = PARSE.parsebytes(render(report()))
    assert not msg.defects
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@example.com"
    assert msg["From"].addresses[0].display_name == "Mail Delivery System"
    assert msg["To"] == "s@client.test"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert re.fullmatch(r"<\d{14}\.5C0DE20E536@mx\.example\.com>", msg["Message-Id"])
    assert msg.get_boundary() == "4B37020E535.1796152433/mx.example.com"
    assert msg.preamble == "This is a MIME-encapsulated message.\n"
    text, status, original = msg.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert text.get_content().endswith(
        "\n<gone@example.com>: User unknown\n"
        "\n<bob@example.com> (expanded from <sales@example.com>): maildir delivery failed:\n"
        "    error writing message: Disk quota exceeded\n"
    )
    assert status.get_content_type() == "message/delivery-status"
    per_message, first, second = status.get_payload()
    assert dict(per_message.items()) == {
        "Reporting-MTA": "dns; mx.example.com",
        "X-Postfix-Queue-ID": "4B37020E535",
        "X-Postfix-Sender": "rfc822; s@client.test",
        "Arrival-Date": per_message["Arrival-Date"],
    }
    assert dict(first.items()) == {
        "Final-Recipient": "rfc822; gone@example.com",
        "Original-Recipient": "rfc822;gone@example.com",
        "Action": "failed",
        "Status": "5.1.1",
        "Diagnostic-Code": "X-Postfix; User unknown",
    }
    assert second["Original-Recipient"] == "rfc822;Sales@Example.com"
    assert second["Status"] == "5.2.2"
    assert original.get_content_type() == "message/rfc822"
    (inner,) = original.get_payload()
    assert inner["Return-Path"] == "<s@client.test>"
    assert inner["Message-ID"] == "<m@client.test>"
    assert inner.get_content() == "body line\n"


def test_headers_only_and_envid() -> None:
    msg = PARSE.parsebytes(render(report(headers_only=True, envid="QQ314159")))
    _, status, original = msg.iter_parts()
    assert status.get_payload()[0]["Original-Envelope-Id"] == "QQ314159"
    assert original.get_content_type() == "text/rfc822-headers"
    assert original["Content-Description"] == "Undelivered Message Headers"
    assert original.get_payload(decode=True) == (
        b"Return-Path: <s@client.test>\nReceived: from client.test\nSubject: hello\n"
        b"Message-ID: <m@client.test>\n"
    )


def test_delay_warning_fields() -> None:
    rep = report(kind="delay", template=DELAY, retry_until=1_796_584_432.0, headers_only=True)
    msg = PARSE.parsebytes(render(rep))
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    _, status, _ = msg.iter_parts()
    first = status.get_payload()[1]
    assert first["Action"] == "delayed"
    assert first["Will-Retry-Until"]


def test_postmaster_copy_and_null_sender() -> None:
    rep = report(postmaster_copy=True, boilerplate="", sender="")
    msg = PARSE.parsebytes(render(rep))
    assert msg["Subject"] == "Postmaster Copy: Undelivered Mail"
    assert msg["Auto-Submitted"] == "auto-generated"
    text, status, original = msg.iter_parts()
    assert text.get_content().startswith("\n<gone@example.com>: User unknown\n")
    # mail_addr_mail_daemon() is @$myhostname; the From: header @$myorigin.
    assert status.get_payload()[0]["X-Postfix-Sender"] == "rfc822; MAILER-DAEMON@mx.example.com"
    assert original.get_payload()[0]["Return-Path"] == "<MAILER-DAEMON@mx.example.com>"


def test_boundary_never_occurs_in_the_original() -> None:
    content = b"Subject: x\n\n--4B37020E535.1796152433/mx.example.com\n"
    msg = PARSE.parsebytes(render(report(), content))
    assert msg.get_boundary() == "4B37020E535.1796152433/mx.example.com/1"
    assert len(list(msg.iter_parts())) == 3


HEADER = st.tuples(
    st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True),
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ").strip()),
)
BODY_LINE = st.binary(max_size=100).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))


@settings(max_examples=200, deadline=None)
@given(st.lists(HEADER, max_size=6), st.lists(BODY_LINE, max_size=10))
def test_the_original_comes_back_byte_for_byte(
    headers: list[tuple[str, bytes]], body: list[bytes]
) -> None:
    content = b"".join(b"%s: %s\n" % (name.encode(), value) for name, value in headers)
    content = b"Subject: x\n" + content + b"\n" + b"".join(line + b"\n" for line in body)
    out = render(report(), content)
    assert b"\nReturn-Path: <s@client.test>\n" + content + b"\n--4B37020E535." in out
    headers_only = render(report(headers_only=True), content)
    head = content.split(b"\n\n", 1)[0] + b"\n"
    assert b"\nReturn-Path: <s@client.test>\n" + head + b"\n--4B37020E535." in headers_only


def test_templates_match_postfix() -> None:
    """The built-in texts are postconf -t's (Postfix 3.7.11), word for word."""
    text = recorded()["postconf_t"]
    for name, template in TEMPLATES.items():
        block = text.split(f"{name}_template = <<EOF\n", 1)[1].split("\nEOF\n", 1)[0]
        head, _, body = block.partition("\n\n")
        fields = dict(line.split(": ", 1) for line in head.splitlines())
        assert fields["From"] == f"{template.sender_name} <MAILER-DAEMON>"
        assert fields["Subject"] == template.subject
        assert fields["Postmaster-Subject"] == template.postmaster_subject
        assert body + "\n" == template.text


def test_template_time_conversion_truncates_like_bounce() -> None:
    values: dict[str, str | float] = {
        "myhostname": "h",
        "delay_warning_time": 4 * 3600 + 59,
        "maximal_queue_lifetime": 5 * 86400,
    }
    text = DELAY.expand(values)
    assert "for more than 4 hour(s)." in text
    assert "until it is 5 day(s) old." in text
    assert "$" not in text
    assert FAILURE.expand({"myhostname": "h"}).startswith("This is the mail system at host h.\n")


def test_addresses_appear_in_external_form() -> None:
    rep = report(
        sender="a b@client.test",
        recipients=(dsn.RecipientReport("x y@example.com", "x y@example.com", "", "5.1.1", "no"),),
    )
    out = dsn.build(
        rep, ORIGIN, recipient="a b@client.test", notice_id="5C0DE20E536", now=1.0, content=ORIGINAL
    )
    msg = PARSE.parsebytes(b"\n".join(dsn.to_lines(out)) + b"\n")
    assert msg["To"] == '"a b"@client.test'
    _, status, original = msg.iter_parts()
    per_message, first = status.get_payload()
    assert per_message["X-Postfix-Sender"] == 'rfc822; "a b"@client.test'
    assert first["Final-Recipient"] == 'rfc822; "x y"@example.com'
    assert original.get_payload()[0]["Return-Path"] == '<"a b"@client.test>'


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=200))
def test_template_text_without_references_is_unchanged(text: str) -> None:
    template = Template("n", "s", "p", text)
    assert template.expand({"myhostname": "h"}) == text


@given(st.from_regex(r"[a-z_]{1,20}", fullmatch=True), st.integers(0, 10**9))
def test_template_references_expand_or_stay(name: str, seconds: int) -> None:
    template = Template("n", "s", "p", f"a ${name} b ${{{name}}} c $Q9 ${name}_days")
    out = template.expand({name: seconds})
    # $NAME_days: the parameter converted to days and truncated (bounce(5)).
    assert out == f"a {seconds} b {seconds} c $Q9 {seconds // 86400}"
