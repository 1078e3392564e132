"""rspamd's milter (its proxy worker) as smtpd_milters: the GTUBE test
message is refused at end of DATA with rspamd's own reply; a clean message
is queued with the headers rspamd adds."""

from __future__ import annotations

from tests.milter.cases import MESSAGE
from tests.milter.harness import smtpd
from tests.smtpd.dialogues import run_dialogue

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EHLO = b"EHLO client.example.org\r\n"
MAIL = b"MAIL FROM:<sender@client.example.org>\r\n"
RCPT = b"RCPT TO:<alice@example.com>\r\n"


def dialogue(port: int, message: bytes) -> list[list[str]]:
    steps = [(b"", 1), (EHLO, 1), (MAIL, 1), (RCPT, 1), (b"DATA\r\n", 1), (message, 1)]
    return run_dialogue(port, [*steps, (b"QUIT\r\n", 1)])


def test_gtube_is_rejected_with_rspamds_reply(rspamd_milter: str) -> None:
    spam = MESSAGE.replace(b"a line\r\n", GTUBE + b"\r\n")
    with smtpd({"smtpd_milters": rspamd_milter}) as server:
        replies = dialogue(server.port, spam)
        log = server.log()
        queued = server.queue.committed()
    assert replies[5] == ["554 5.7.1 Gtube pattern"], log
    assert "milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 5.7.1 Gtube pattern;" in log
    assert queued == []


def test_clean_message_gets_rspamds_headers(rspamd_milter: str) -> None:
    with smtpd({"smtpd_milters": rspamd_milter}) as server:
        replies = dialogue(server.port, MESSAGE)
        log = server.log()
        (queued,) = server.queue.committed()
    assert replies[5] == ["250 2.0.0 Ok: queued as QID"], log
    names = {line.split(b":", 1)[0] for line in queued.content if line[:1] not in (b" ", b"\t")}
    assert {b"X-Spamd-Result", b"X-Spam-Status", b"Authentication-Results"} <= names
    status = next(line for line in queued.content if line.startswith(b"X-Spam-Status:"))
    assert status.startswith(b"X-Spam-Status: No,")
