"""mailhost's lmtpd on its own: LHLO and its extensions, pipelining, one
reply per recipient, aliases, bad input (the right code, never a
traceback), size limits, table outages, deferrals, timeouts, the unix
socket, and the maillog lines."""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

from tests.lmtpd.conftest import Lmtpd, start_lmtpd
from tests.lmtpd.site import MESSAGE, LmtpClient, session, write_mailhost_site
from tests.qmgr.helpers import captured_log


async def test_lhlo_offers_pipelining_size_enhancedstatuscodes_8bitmime(lmtpd: Lmtpd) -> None:
    client, greeting = await LmtpClient.connect(lmtpd.port)
    assert greeting == "220 store.example.com mailhost LMTP ready."
    assert await client.command("LHLO client.test") == (
        "250-store.example.com\n250-PIPELINING\n250-SIZE 10240000\n"
        "250-ENHANCEDSTATUSCODES\n250 8BITMIME"
    )
    await client.close()


async def test_a_pipelined_session_gets_every_reply_in_order(lmtpd: Lmtpd) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", lmtpd.port)
    writer.write(
        b"LHLO client.test\r\nMAIL FROM:<s@client.test> BODY=8BITMIME SIZE=100\r\n"
        b"RCPT TO:<alice@example.com>\r\nRCPT TO:<nobody@example.com>\r\n"
        b"RCPT TO:<bob@example.com>\r\nDATA\r\n"
        + MESSAGE.encode() + b".\r\nQUIT\r\n"
    )  # fmt: skip
    lines = (await asyncio.wait_for(reader.read(), 10)).decode().splitlines()
    writer.close()
    assert [line[:9] for line in lines if not line.startswith("250-")] == [
        "220 store", "250 8BITM", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5",
        "354 OK", "250 2.0.0", "250 2.0.0", "221 2.0.0",
    ]  # fmt: skip
    assert "<alice@example.com>" in lines[-3]
    assert "<bob@example.com>" in lines[-2]


async def test_alias_and_direct_mailbox_are_both_delivered(lmtpd: Lmtpd) -> None:
    """Resolution as for inbound SMTP: team expands to alice and bob; each
    copy records the address given (X-Original-To)."""
    answers = await session(lmtpd.port, ["team@example.com", "bob@example.com"])
    assert answers[-3].startswith("250 2.0.0 <team@example.com> ")
    assert answers[-2].startswith("250 2.0.0 <bob@example.com> ")
    (alice,) = (lmtpd.maildir("alice") / "new").iterdir()
    assert b"X-Original-To: team@example.com\n" in alice.read_bytes()
    originals = sorted(
        re.findall(rb"X-Original-To: (\S+)", path.read_bytes())[0]
        for path in (lmtpd.maildir("bob") / "new").iterdir()
    )
    assert originals == [b"bob@example.com", b"team@example.com"]


async def test_a_250_means_the_copy_is_in_new(lmtpd: Lmtpd) -> None:
    client, _ = await LmtpClient.connect(lmtpd.port)
    for line in ("LHLO c", "MAIL FROM:<>", "RCPT TO:<alice@example.com>", "DATA"):
        await client.command(line)
    (answer,) = await client.data(MESSAGE, 1)
    assert answer.startswith("250 2.0.0")
    (message,) = (lmtpd.maildir("alice") / "new").iterdir()
    text = message.read_bytes()
    assert text.startswith(b"Return-Path: <>\n")
    assert b"\tby store.example.com (mailhost) with LMTP id " in text
    assert text.endswith(b"\nA message of a few lines\n")
    await client.close()


async def test_bad_input_gets_the_right_code_never_a_traceback(tmp_path: Path) -> None:
    write_mailhost_site(tmp_path)
    store = await start_lmtpd(tmp_path, "-o smtpd_hard_error_limit=100")
    client, _ = await LmtpClient.connect(store.port)
    expected = [
        ("LHLO client.test", "250-"),
        ("RCPT TO:<alice@example.com>", "503 5.5.1 Error: need MAIL command"),
        ("DATA", "503 5.5.1 Error: need RCPT command"),
        ("MAIL FROM:<a b>", "501 5.1.7 Bad sender address syntax"),
        ("MAIL TO:<a@b>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
        ("MAIL FROM:<s@client.test> SIZE=abc", "501 5.5.4 Bad message size syntax"),
        (
            "MAIL FROM:<s@client.test> SIZE=99999999999",
            "552 5.3.4 Message size exceeds fixed limit",
        ),
        ("MAIL FROM:<s@client.test> BODY=BINARYMIME", "555 5.5.4 Unsupported parameters"),
        ("MAIL FROM:<s@client.test>", "250 2.1.0 OK"),
        ("MAIL FROM:<s@client.test>", "503 5.5.1 Error: nested MAIL command"),
        ("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax"),
        ("RCPT TO:", "501 5.5.4 Syntax: RCPT TO:<address>"),
        ("RCPT TO:<alice@example.com> NOTIFY=NEVER", "555 5.5.4 Unsupported parameters"),
        (b"RCPT TO:<\xff\xfe@example.com>", "500 5.5.2 Error: bad UTF-8 syntax"),
        ("RCPT TO:<\u00e9@example.com>", "550 5.1.1 <\u00e9@example.com> User doesn't exist"),
        ("RCPT TO:<" + "a" * 5000 + "@example.com>", "5"),
        (b"\xff\xfe\x00garbage", "500 5.5.2 Error: bad UTF-8 syntax"),
        (b"\x00\x01garbage", "500 5.5.1 Unknown command"),
        ("", "500 5.5.1 Unknown command"),
        ("STARTTLS", "500 5.5.1 Unknown command"),
        ("BDAT 10 LAST", "500 5.5.1 Unknown command"),
        ("DATA x", "503 5.5.0 No valid recipients"),
        ("RCPT TO:<nobody@example.com>", "550 5.1.1"),
        ("DATA", "503 5.5.0 No valid recipients"),
        ("RSET", "250 2.0.0 Ok"),
        ("RCPT TO:<alice@example.com>", "503 5.5.1 Error: need MAIL command"),
        ("NOOP", "250 2.0.0 Ok"),
        ("QUIT", "221 2.0.0 Bye"),
    ]
    with captured_log() as log:
        for line, reply in expected:
            answer = await client.command(line)
            assert answer.startswith(reply), (line, answer)
        await client.close()
        await asyncio.sleep(0.05)
    await store.close()
    assert "Traceback" not in log.text()
    assert "internal error" not in log.text()
    assert "request longer than 2048" in log.text()


async def test_message_too_big_is_refused_once_per_recipient(tmp_path: Path) -> None:
    write_mailhost_site(tmp_path)
    store = await start_lmtpd(tmp_path, "-o message_size_limit=300")
    try:
        big = MESSAGE + "x" * 100 + "\r\n" + ("y" * 80 + "\r\n") * 10
        answers = await session(store.port, ["alice@example.com", "bob@example.com"], big)
    finally:
        await store.close()
    assert answers[-3:] == [
        "552 5.3.4 Error: message file too big",
        "552 5.3.4 Error: message file too big",
        "221 2.0.0 Bye",
    ]
    assert list((store.maildir("alice") / "new").iterdir()) == []


async def test_a_table_outage_is_a_temporary_failure(tmp_path: Path) -> None:
    write_mailhost_site(tmp_path, f"virtual_mailbox_maps = hash:{tmp_path}/missing\n")
    store = await start_lmtpd(tmp_path)
    try:
        answers = await session(store.port, ["alice@example.com"])
    finally:
        await store.close()
    assert answers[1] == "451 4.3.0 <alice@example.com> Temporary internal error"


async def test_a_delivery_that_defers_answers_4xx_for_that_recipient(tmp_path: Path) -> None:
    """virtual(8) refuses a relative mailbox base (fatal, so it defers)."""
    write_mailhost_site(tmp_path, "virtual_mailbox_base = relative/vmail\n")
    store = await start_lmtpd(tmp_path)
    try:
        with captured_log() as log:
            answers = await session(store.port, ["alice@example.com"])
    finally:
        await store.close()
    assert answers[-2] == "451 4.3.0 <alice@example.com> Temporary internal error"
    assert "dsn=4.3.0, status=deferred (unknown mail transport error)" in log.text()


async def test_over_quota_defers_with_overquota_bounce_no(tmp_path: Path) -> None:
    """mailhost_quota_overquota_bounce = no: 452 4.2.2 (Dovecot's
    quota_full_tempfail = yes), at RCPT and after DATA."""
    write_mailhost_site(tmp_path, "mailhost_quota_overquota_bounce = no\n")
    store = await start_lmtpd(tmp_path)
    try:
        answers = await session(store.port, ["full@example.com", "tight@example.com"])
    finally:
        await store.close()
    quota = "Quota exceeded (mailbox for user is full)"
    assert answers[1] == f"452 4.2.2 <full@example.com> {quota}"
    assert answers[-2] == f"452 4.2.2 <tight@example.com> {quota}"


async def test_maillog_lines_are_postfix_shaped(lmtpd: Lmtpd) -> None:
    with captured_log() as log:
        await session(lmtpd.port, ["alice@example.com", "nobody@example.com"])
        await asyncio.sleep(0.05)
    text = log.text()
    qid = re.search(r"lmtpd: (\w+): client=localhost\[127\.0\.0\.1\]", text)
    assert qid is not None, text
    q = qid.group(1)
    assert "lmtpd: connect from localhost[127.0.0.1]" in text
    assert (
        f"lmtpd: {q}: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 <nobody@example.com> "
        "User doesn't exist: nobody@example.com; from=<s@client.test> to=<nobody@example.com> "
        "proto=LMTP helo=<client.test>"
    ) in text
    assert re.search(rf"lmtpd: {q}: from=<s@client\.test>, size=\d+, nrcpt=1\n", text)
    assert re.search(
        rf"lmtpd: {q}: to=<alice@example\.com>, relay=virtual, delay=[\d.]+, "
        r"delays=[\d.]+/0/0/[\d.]+, dsn=2\.0\.0, status=sent \(delivered to maildir\)",
        text,
    )
    assert (
        "lmtpd: disconnect from localhost[127.0.0.1] lhlo=1 mail=1 rcpt=1/2 data=1 quit=1 "
        "commands=5/6"
    ) in text


async def test_idle_timeout_is_421_and_logged(tmp_path: Path) -> None:
    write_mailhost_site(tmp_path)
    store = await start_lmtpd(tmp_path, "-o smtpd_timeout=1s")
    try:
        with captured_log() as log:
            client, _ = await LmtpClient.connect(store.port)
            await client.command("LHLO client.test")
            assert await client.reply() == "421 4.4.2 store.example.com Error: timeout exceeded"
            await client.close()
            await asyncio.sleep(0.05)
    finally:
        await store.close()
    assert "lmtpd: timeout after LHLO from localhost[127.0.0.1]" in log.text()


async def test_lost_connection_during_data_delivers_nothing(lmtpd: Lmtpd) -> None:
    with captured_log() as log:
        client, _ = await LmtpClient.connect(lmtpd.port)
        for line in ("LHLO c", "MAIL FROM:<>", "RCPT TO:<alice@example.com>", "DATA"):
            await client.command(line)
        client.writer.write(b"Subject: cut\r\n\r\npart of a mess")
        await client.close()
        await asyncio.sleep(0.1)
    assert "lmtpd: lost connection after DATA from localhost[127.0.0.1]" in log.text()
    assert list((lmtpd.maildir("alice") / "new").iterdir()) == []


async def test_unix_socket_below_queue_directory(tmp_path: Path) -> None:
    """``private/lmtpd unix ...``: a path relative to queue_directory, as
    Postfix's private/ sockets are."""
    write_mailhost_site(tmp_path)
    store = await start_lmtpd(tmp_path, line="private/lmtpd unix - - n - - lmtpd\n")
    try:
        socket = tmp_path / "queue" / "private" / "lmtpd"
        reader, writer = await asyncio.open_unix_connection(str(socket))
        client = LmtpClient(reader, writer)
        assert (await client.reply()).startswith("220 ")
        await client.command("LHLO edge.example.com")
        await client.command("MAIL FROM:<s@client.test>")
        assert await client.command("RCPT TO:<alice@example.com>") == "250 2.1.5 OK"
        await client.command("DATA")
        (answer,) = await client.data(MESSAGE, 1)
        assert answer.startswith("250 2.0.0 <alice@example.com> ")
        await client.close()
    finally:
        await store.close()
    assert len(list((store.maildir("alice") / "new").iterdir())) == 1


async def test_too_many_errors_ends_the_session(tmp_path: Path) -> None:
    write_mailhost_site(tmp_path)
    store = await start_lmtpd(tmp_path, "-o smtpd_hard_error_limit=3")
    try:
        with captured_log() as log:
            client, _ = await LmtpClient.connect(store.port)
            for _ in range(3):
                assert await client.command("HELO x") == "500 5.5.1 Unknown command"
            assert await client.reply() == "421 4.7.0 store.example.com Error: too many errors"
            await client.close()
            await asyncio.sleep(0.05)
    finally:
        await store.close()
    assert "lmtpd: too many errors after UNKNOWN from localhost[127.0.0.1]" in log.text()


async def test_recipients_past_smtpd_recipient_limit_are_452(tmp_path: Path) -> None:
    write_mailhost_site(tmp_path)
    store = await start_lmtpd(tmp_path, "-o smtpd_recipient_limit=1")
    try:
        answers = await session(store.port, ["alice@example.com", "bob@example.com"])
    finally:
        await store.close()
    assert answers[1:3] == ["250 2.1.5 OK", "452 4.5.3 Error: too many recipients"]
    assert answers[-2].startswith("250 2.0.0 <alice@example.com> ")


async def test_after_the_final_dot_the_message_is_delivered_even_if_the_client_leaves(
    lmtpd: Lmtpd,
) -> None:
    client, _ = await LmtpClient.connect(lmtpd.port)
    for line in ("LHLO c", "MAIL FROM:<>", "RCPT TO:<alice@example.com>", "DATA"):
        await client.command(line)
    client.writer.write(MESSAGE.encode() + b".\r\n")
    await client.writer.drain()
    await asyncio.sleep(0.1)  # lmtpd reads the final dot, then the client goes
    await client.close()
    for _ in range(100):
        if list((lmtpd.maildir("alice") / "new").iterdir()):
            break
        await asyncio.sleep(0.05)
    assert len(list((lmtpd.maildir("alice") / "new").iterdir())) == 1


async def test_stopping_the_service_closes_idle_sessions(tmp_path: Path) -> None:
    write_mailhost_site(tmp_path)
    store = await start_lmtpd(tmp_path)
    client, _ = await LmtpClient.connect(store.port)
    await client.command("LHLO client.test")
    with captured_log() as log:
        await asyncio.wait_for(store.close(), 10)
    assert await asyncio.wait_for(client.reader.read(), 10) == b""
    await client.close()
    assert store.service.sessions == set()
    assert "lmtpd: disconnect from localhost[127.0.0.1] lhlo=1 commands=1" in log.text()


async def test_a_local_recipient_is_delivered_by_local(tmp_path: Path) -> None:
    """mydestination mail goes to local(8): here an alias to a file, which
    local(8) writes as default_privs (so in a directory anyone may write)."""
    with tempfile.TemporaryDirectory(prefix="mailhost-lmtpd-") as name:
        spool = Path(name)
        spool.chmod(0o777)
        answers, log = await local_delivery(tmp_path, spool)
        assert b"Subject: lmtpd test" in (spool / "filer.mbox").read_bytes()
    assert answers[1] == "250 2.1.5 OK"
    assert answers[2].startswith("550 5.1.1 <stranger@store.example.com> ")
    assert answers[-2].startswith("250 2.0.0 <filer@store.example.com> "), log
    assert "relay=local" in log


async def test_a_bounce_reason_is_logged_not_sent(tmp_path: Path) -> None:
    """local(8) cannot write the file: the edge learns the DSN, not the path."""
    spool = tmp_path / "closed"
    spool.mkdir(mode=0o700)
    answers, log = await local_delivery(tmp_path, spool)
    assert answers[-2] == "554 5.2.0 <filer@store.example.com> Delivery failed"
    assert f"status=bounced (cannot append message to file {spool}/filer.mbox" in log


async def local_delivery(directory: Path, spool: Path) -> tuple[list[str], str]:
    write_mailhost_site(
        directory,
        "mydestination = store.example.com\n"
        f"alias_maps = inline:{{{{filer={spool}/filer.mbox}}}}\n"
        "local_recipient_maps = $alias_maps\n",
    )
    store = await start_lmtpd(directory)
    try:
        with captured_log() as log:
            answers = await session(
                store.port, ["filer@store.example.com", "stranger@store.example.com"]
            )
    finally:
        await store.close()
    return answers, log.text()


async def test_a_virtual_mbox_mailbox_gets_the_whole_message(tmp_path: Path) -> None:
    write_mailhost_site(
        tmp_path, "virtual_mailbox_maps = inline:{mboxer@example.com=example.com/mboxer}\n"
    )
    store = await start_lmtpd(tmp_path)
    try:
        answers = await session(store.port, ["mboxer@example.com"])
    finally:
        await store.close()
    assert answers[-2].startswith("250 2.0.0 <mboxer@example.com> ")
    text = (tmp_path / "vmail" / "example.com" / "mboxer").read_bytes()
    assert text.startswith(b"From s@client.test ")
    assert text.endswith(b"\nA message of a few lines\n\n")


async def test_dot_stuffing_long_lines_and_a_spooled_body(lmtpd: Lmtpd) -> None:
    """Only <CRLF>.<CRLF> ends DATA (``<LF>.<LF>`` is text); a body past
    the memory buffer is spooled and copied into the Maildir whole."""
    long_line = "z" * 200_000
    body = "..leading dot\r\n.\n.not the end\r\n" + long_line + "\r\n" + "line\r\n" * 20_000
    answers = await session(lmtpd.port, ["alice@example.com"], MESSAGE + body)
    assert answers[-2].startswith("250 2.0.0 <alice@example.com> ")
    (message,) = (lmtpd.maildir("alice") / "new").iterdir()
    text = message.read_bytes()
    # every line's leading dot is removed (RFC 5321 §4.5.2), a bare LF ends a line
    assert b"\n.leading dot\n\nnot the end\n" + long_line.encode() + b"\n" in text
    assert text.endswith(b"line\n" * 20_000)
