"""What the recorded dialogues do not cover: several milters in order, a
UNIX-domain milter socket, the macro values smtpd sends, settings errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mailhost.config import Config
from mailhost.errors import ConfigError
from mailhost.milter import wire
from mailhost.milter.settings import MilterSettings
from tests.milter.cases import FULL, REJECT
from tests.milter.harness import smtpd
from tests.milter.peer import Script, ScriptedMilter, running
from tests.smtpd.dialogues import run_dialogue

E = wire.SMFIC_BODYEOB


def test_milters_run_in_order_and_see_each_others_changes() -> None:
    first = Script(
        answers={
            E: [(wire.SMFIR_ADDHEADER, wire.cstrings("X-First", "1")), (wire.SMFIR_CONTINUE, b"")]
        }
    )
    second = Script(
        answers={
            E: [(wire.SMFIR_ADDHEADER, wire.cstrings("X-Second", "2")), (wire.SMFIR_CONTINUE, b"")]
        }
    )
    with running(first) as one, running(second) as two:
        with smtpd({"smtpd_milters": f"{one.endpoint}, {two.endpoint}"}) as server:
            replies = run_dialogue(server.port, FULL)
            (queued,) = server.queue.committed()
        headers_seen_by_second = [
            data.split(b"\0")[0] for cmd, data in two.received if cmd == wire.SMFIC_HEADER
        ]
    assert replies[5] == ["250 2.0.0 Ok: queued as QID"]
    assert b"X-First" in headers_seen_by_second
    added = [line for line in queued.content if line.startswith(b"X-")]
    assert added == [b"X-Folded: first", b"X-First: 1", b"X-Second: 2"]


def test_a_reject_stops_the_chain() -> None:
    with running(Script(answers={wire.SMFIC_MAIL: REJECT})) as one, running(Script()) as two:
        with smtpd({"smtpd_milters": f"{one.endpoint} {two.endpoint}"}) as server:
            replies = run_dialogue(
                server.port,
                [
                    (b"", 1),
                    (b"EHLO x.example\r\n", 1),
                    (b"MAIL FROM:<a@b.example>\r\n", 1),
                    (b"QUIT\r\n", 1),
                ],
            )
    assert replies[2] == ["550 5.7.1 Command rejected"]
    assert wire.SMFIC_MAIL in one.events()
    assert wire.SMFIC_MAIL not in two.events()


def test_unix_socket_milter(tmp_path: Path) -> None:
    path = tmp_path / "milter.sock"
    script = Script(answers={E: [(wire.SMFIR_REPLYCODE, b"554 5.7.1 over a UNIX socket\0")]})
    with running_unix(script, str(path)) as milter:
        with smtpd({"smtpd_milters": milter.endpoint}) as server:
            replies = run_dialogue(server.port, FULL)
    assert replies[5] == ["554 5.7.1 over a UNIX socket"]


@contextmanager
def running_unix(script: Script, path: str) -> Iterator[ScriptedMilter]:
    milter = ScriptedMilter(script, unix_path=path).start()
    try:
        yield milter
    finally:
        milter.stop()


def test_macro_values() -> None:
    with running(Script()) as milter:
        settings = {
            "smtpd_milters": milter.endpoint,
            "milter_macro_daemon_name": "ORIGINATING",
            "milter_macro_defaults": "{auth_type}=none",
        }
        with smtpd(settings) as server:
            run_dialogue(server.port, FULL)
        connect = milter.macros(wire.SMFIC_CONNECT)
        mail = milter.macros(wire.SMFIC_MAIL)
        rcpt = milter.macros(wire.SMFIC_RCPT)
        eom = milter.macros(E)
    assert connect["j"] == "mx.example.com"
    assert connect["{daemon_name}"] == "ORIGINATING"
    assert connect["{daemon_addr}"] == "127.0.0.1"
    assert connect["_"] == "localhost [127.0.0.1]"
    assert connect["v"].startswith("Postfix ")
    assert mail == {"{auth_type}": "none", "{mail_addr}": "sender@client.example.org"}
    assert rcpt == {"{rcpt_addr}": "alice@example.com"}
    assert set(eom) == {"i"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inet:127.0.0.1", "milter inet:127.0.0.1: bad endpoint (inet:host:port)"),
        ("{ inet:127.0.0.1:1, colour=blue }", "milter inet:127.0.0.1:1: unknown attribute: colour"),
        (
            "{ inet:127.0.0.1:1, default_action=bounce }",
            "milter_default_action: unrecognized value: bounce",
        ),
        ("{ inet:127.0.0.1:1, protocol=5 }", "milter_protocol: bad protocol information: 5"),
        ("unix:", "milter unix:: missing socket path"),
    ],
)
def test_bad_milter_settings_are_config_errors(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        MilterSettings.from_config(Config(Path("/nonexistent"), {"smtpd_milters": value}))


def test_group_settings() -> None:
    cfg = Config(
        Path("/nonexistent"),
        {
            "smtpd_milters": "{ inet:[::1]:8891, connect_timeout=5s, command_timeout=1m, "
            "content_timeout=10, default_action=accept, protocol=4 }, unix:/run/x.sock",
            "milter_protocol": "6 no_header_reply",
        },
    )
    first, second = MilterSettings.from_config(cfg).milters
    assert (first.endpoint.host, first.endpoint.port) == ("::1", 8891)
    assert (first.connect_timeout, first.command_timeout, first.content_timeout) == (5, 60, 10)
    assert (first.default_action, first.version, first.no_header_reply) == ("accept", 4, False)
    assert (second.endpoint.path, second.default_action, second.version) == (
        "/run/x.sock",
        "tempfail",
        6,
    )
    assert second.no_header_reply


def test_unanswered_headers_and_body_arrive_whole_and_in_order() -> None:
    """Issue 17: packets of events the filter does not answer (SMFIP_NR_HDR,
    SMFIP_NR_BODY) are queued and go out with the next awaited event; the
    filter still sees every header, each after its macros, then the body
    and the end of message, and its end-of-message reply counts."""
    script = Script(
        protocol=wire.SMFIP_NR_HDR | wire.SMFIP_NR_EOH | wire.SMFIP_NR_BODY,
        answers={E: [(wire.SMFIR_ADDHEADER, wire.cstrings("X-Seen", "yes")),
                     (wire.SMFIR_CONTINUE, b"")]},
    )  # fmt: skip
    with running(script) as milter:
        with smtpd({"smtpd_milters": milter.endpoint}) as server:
            replies = run_dialogue(server.port, FULL)
            (queued,) = server.queue.committed()
        received = list(milter.received)
    assert replies[5] == ["250 2.0.0 Ok: queued as QID"]
    content = [cmd for cmd, _ in received if cmd != wire.SMFIC_MACRO]
    first_header = content.index(wire.SMFIC_HEADER)
    tail = content[first_header:]
    headers = tail.count(wire.SMFIC_HEADER)
    assert headers >= 1
    assert tail[headers:] in (
        [wire.SMFIC_EOH, wire.SMFIC_BODY, E, wire.SMFIC_QUIT],
        [wire.SMFIC_EOH, wire.SMFIC_BODY, E],
    )
    # Every header came right after its own SMFIC_MACRO packet.
    for i, (cmd, _) in enumerate(received):
        if cmd == wire.SMFIC_HEADER:
            assert received[i - 1][0] == wire.SMFIC_MACRO
    assert b"X-Seen: yes" in queued.content
