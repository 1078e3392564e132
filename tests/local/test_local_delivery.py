"""local(8) through the queue manager: aliases, :include:, files, commands,
system mailboxes, forwarding, with local(8)'s status texts."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest

from tests.local.site import ME, LocalSite
from tests.qmgr.helpers import captured_log

root_only = pytest.mark.skipif(ME != 0, reason="needs root to switch users")
ME_NAME = pwd.getpwuid(ME).pw_name


def _line(text: str, to: str) -> str:
    found = [line for line in text.splitlines() if f"to=<{to}>" in line and "relay=" in line]
    assert found, text
    return found[-1]


async def test_system_user_gets_mbox_in_spool(site_dir: Path) -> None:
    site = LocalSite(site_dir)
    qid = await site.enqueue(f"{ME_NAME}@localhost")
    with captured_log() as log:
        await site.run()
    line = _line(log.text(), f"{ME_NAME}@localhost")
    assert re.search(
        rf"local: {qid}: to=<{ME_NAME}@localhost>, relay=local, delay=[\d.]+, "
        r"delays=[\d.]+/[\d.]+/0/[\d.]+, dsn=2\.0\.0, status=sent \(delivered to mailbox\)",
        line,
    ), line
    mbox = site.mailbox(ME_NAME)
    assert mbox.startswith(b"From s@client.test  ")
    assert (
        b"Return-Path: <s@client.test>\nX-Original-To: "
        + f"{ME_NAME}@localhost\nDelivered-To: {ME_NAME}@localhost\n".encode()
    ) in mbox
    assert b"\n>From the start\n" in mbox
    assert mbox.endswith(b"body\n\n")
    assert oct((site.spool / ME_NAME).stat().st_mode & 0o777) == "0o600"


async def test_unknown_user_bounces(site_dir: Path) -> None:
    site = LocalSite(site_dir)
    await site.enqueue("no.such.user@localhost")
    with captured_log() as log:
        await site.run()
    assert 'dsn=5.1.1, status=bounced (unknown user: "no.such.user")' in log.text()


async def test_alias_to_user_logs_final_and_original(site_dir: Path) -> None:
    site = LocalSite(site_dir, f"postmaster: root\nroot: {ME_NAME}\n")
    qid = await site.enqueue("postmaster@localhost")
    with captured_log() as log:
        await site.run()
    line = _line(log.text(), f"{ME_NAME}@mail.example.org")
    assert f"{qid}: to=<{ME_NAME}@mail.example.org>, orig_to=<postmaster@localhost>, " in line
    assert "status=sent (delivered to mailbox)" in line
    # Delivered-To names the queue recipient (as Postfix writes it)
    assert b"Delivered-To: postmaster@localhost\n" in site.mailbox(ME_NAME)
    assert b"X-Original-To: postmaster@localhost\n" in site.mailbox(ME_NAME)


async def test_alias_listing_itself_reaches_the_mailbox_too(site_dir: Path) -> None:
    site = LocalSite(site_dir, f"{ME_NAME}: {ME_NAME}, {site_dir}/copy\n")
    await site.enqueue(f"{ME_NAME}@localhost")
    with captured_log() as log:
        await site.run()
    assert "status=sent (delivered to mailbox)" in log.text()
    assert f"status=sent (delivered to file: {site_dir}/copy)" in log.text()
    assert site.mailbox(ME_NAME).count(b"Subject: hello") == 1
    assert (site_dir / "copy").read_bytes().startswith(b"From s@client.test  ")


async def test_alias_loop_bounces_after_100_levels(site_dir: Path) -> None:
    site = LocalSite(site_dir, "a: b\nb: a\n")
    await site.enqueue("a@localhost")
    with captured_log() as log:
        await site.run()
    assert "warning: alias database loop for " in log.text()
    assert "dsn=5.4.6, status=bounced (alias database loop for " in log.text()


async def test_extension_falls_back_to_base_alias(site_dir: Path) -> None:
    site = LocalSite(site_dir, f"sales: {ME_NAME}\n", extra="recipient_delimiter = +\n")
    await site.enqueue("Sales+Spring@localhost")
    with captured_log() as log:
        await site.run()
    assert "orig_to=<Sales+Spring@localhost>" in log.text()
    assert "status=sent (delivered to mailbox)" in log.text()


async def test_duplicate_members_delivered_once(site_dir: Path) -> None:
    site = LocalSite(site_dir, f"team: {ME_NAME}, {ME_NAME}@localhost, x\nx: {ME_NAME}\n")
    await site.enqueue("team@localhost")
    await site.run()
    assert site.mailbox(ME_NAME).count(b"Subject: hello") == 1


async def test_command_runs_with_local_environment(site_dir: Path) -> None:
    out = site_dir / "out"
    cmd = f'"|env > {out}.env; cat > {out}"'
    site = LocalSite(site_dir, f"pipe: {cmd}\n", extra="recipient_delimiter = +\n")
    qid = await site.enqueue("pipe+ext@localhost")
    with captured_log() as log:
        await site.run()
    assert f"{qid}: to=<pipe+ext@localhost>, relay=local" in log.text()
    assert f"status=sent (delivered to command: env > {out}.env; cat > {out})" in log.text()
    env = dict(
        line.split("=", 1)
        for line in (site_dir / "out.env").read_text().splitlines()
        if "=" in line
    )
    assert env["RECIPIENT"] == "pipe+ext@localhost"
    assert env["SENDER"] == "s@client.test"
    assert env["LOCAL"] == "pipe+ext"
    assert env["EXTENSION"] == "ext"
    assert env["DOMAIN"] == "localhost"
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["USER"] == env["LOGNAME"] == "pipe"
    assert env["ORIGINAL_RECIPIENT"] == "pipe+ext@localhost"
    if ME == 0:  # a root-owned alias file: default_privs, no HOME or SHELL
        assert "HOME" not in env
        assert "SHELL" not in env
    body = out.read_bytes()
    assert body.startswith(b"From s@client.test  ")
    assert b"Delivered-To: pipe+ext@localhost\n" in body
    assert b"\nFrom the start\n" in body  # no >From quoting for commands


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (75, "dsn=4.3.0, status=deferred (temporary failure. Command output: oops )"),
        (67, "dsn=5.1.1, status=bounced (user unknown. Command output: oops )"),
        (
            3,
            'dsn=5.3.0, status=bounced (Command died with status 3: "echo oops; exit 3".'
            " Command output: oops )",
        ),
    ],
)
async def test_command_exit_status_maps_per_sysexits(
    site_dir: Path, status: int, expected: str
) -> None:
    site = LocalSite(site_dir, f'pipe: "|echo oops; exit {status}"\n')
    await site.enqueue("pipe@localhost")
    with captured_log() as log:
        await site.run()
    assert expected in log.text()


async def test_command_time_limit(site_dir: Path) -> None:
    site = LocalSite(site_dir, 'slow: "|sleep 30"\n', extra="command_time_limit = 1s\n")
    await site.enqueue("slow@localhost")
    with captured_log() as log:
        await site.run()
    assert 'dsn=5.3.0, status=bounced (Command time limit exceeded: "sleep 30")' in log.text()


async def test_files_and_commands_gated_by_allow_parameters(site_dir: Path) -> None:
    site = LocalSite(
        site_dir,
        f"f: {site_dir}/file\nc: |true\n",
        extra="allow_mail_to_files = forward\nallow_mail_to_commands =\n",
    )
    await site.enqueue("f@localhost", "c@localhost")
    with captured_log() as log:
        await site.run()
    assert "dsn=5.7.1, status=bounced (mail to file is restricted)" in log.text()
    assert "dsn=5.7.1, status=bounced (mail to command is restricted)" in log.text()
    assert not (site_dir / "file").exists()


async def test_include_file_members_and_class(site_dir: Path) -> None:
    inc = site_dir / "list.inc"
    inc.write_text(f"# members\n{ME_NAME}\n{site_dir}/incfile\n")
    site = LocalSite(site_dir, f"list: :include:{inc}\n")
    await site.enqueue("list@localhost")
    with captured_log() as log:
        await site.run()
    assert "status=sent (delivered to mailbox)" in log.text()
    # the default allow_mail_to_files (alias, forward) excludes include files
    assert "status=bounced (mail to file is restricted)" in log.text()


async def test_remote_member_is_forwarded_as_new_queue_file(site_dir: Path) -> None:
    site = LocalSite(site_dir, "fwd: bob@example.com\n")
    qid = await site.enqueue("fwd@localhost")
    with captured_log() as log:
        await site.run()
    found = re.search(
        rf"{qid}: to=<fwd@localhost>, relay=local, .*"
        r"dsn=2\.0\.0, status=sent \(forwarded as (\w+)\)",
        log.text(),
    )
    assert found, log.text()
    new = found.group(1)
    assert f"{new}: to=<bob@example.com>, orig_to=<fwd@localhost>, relay=virtual" in log.text()
    (message,) = (site_dir / "vmail" / "example.com" / "bob" / "new").iterdir()
    assert b"Delivered-To: fwd@localhost\n" in message.read_bytes()


async def test_alias_table_outage_defers(site_dir: Path) -> None:
    site = LocalSite(site_dir)
    (site_dir / "aliases.mhdb").unlink()
    await site.enqueue("root@localhost")
    with captured_log() as log:
        await site.run()
    assert "dsn=4.3.0, status=deferred (alias database unavailable)" in log.text()


async def test_delivered_to_loop_bounces(site_dir: Path) -> None:
    from mailhost.queue.qfile import Envelope, Recipient

    site = LocalSite(site_dir)
    envelope = Envelope("s@x", (Recipient(f"{ME_NAME}@localhost"),), 1e10)
    await site.store().enqueue(envelope, [f"Delivered-To: {ME_NAME}@localhost".encode(), b"", b"x"])
    with captured_log() as log:
        await site.run()
    assert f"status=bounced (mail forwarding loop for {ME_NAME}@localhost)" in log.text()


@root_only
async def test_mailbox_owned_by_user_when_root(site_dir: Path) -> None:
    site = LocalSite(site_dir, "postmaster: nobody\n")
    await site.enqueue("postmaster@localhost")
    await site.run()
    st = (site.spool / "nobody").stat()
    nobody = pwd.getpwnam("nobody")
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)


@root_only
async def test_root_owned_alias_commands_run_as_default_privs(site_dir: Path) -> None:
    out = site_dir / "who"
    site = LocalSite(site_dir, f'who: "|id -u > {out}"\n')
    await site.enqueue("who@localhost")
    await site.run()
    assert out.read_text().strip() == str(pwd.getpwnam("nobody").pw_uid)


@root_only
async def test_root_owned_alias_file_written_as_default_privs(site_dir: Path) -> None:
    protected = site_dir / "protected"
    protected.write_text("")
    protected.chmod(0o600)
    site = LocalSite(site_dir, f"f: {protected}\n")
    await site.enqueue("f@localhost")
    with captured_log() as log:
        await site.run()
    # Postfix's safe_open(3) text and local(8)'s 5.2.0 (file.c, mbox_open).
    assert (
        f"dsn=5.2.0, status=bounced (cannot append message to file {protected}: "
        "cannot open file: Permission denied)" in log.text()
    )
    assert protected.read_text() == ""
    assert os.stat(protected).st_uid == 0


async def test_mailbox_command_is_not_main_cf_expanded(site_dir: Path) -> None:
    out = site_dir / "mc"
    site = LocalSite(
        site_dir,
        extra=f'recipient_delimiter = +\nmailbox_command = echo "$EXTENSION $USER" > {out}\n',
    )
    await site.enqueue(f"{ME_NAME}+box@localhost")
    with captured_log() as log:
        await site.run()
    assert "undefined parameter" not in log.text()
    assert "status=sent (delivered to command: echo" in log.text()
    # USER names the recipient even though root's command runs as default_privs
    assert out.read_text() == f"box {ME_NAME}\n"
    if ME == 0:
        assert out.stat().st_uid == pwd.getpwnam("nobody").pw_uid


@root_only
async def test_include_file_is_read_with_the_current_privileges(site_dir: Path) -> None:
    secret = site_dir / "secret"
    secret.write_text("root\n")
    secret.chmod(0o600)  # root only: default_privs (nobody) cannot read it
    site = LocalSite(site_dir, f"list: :include:{secret}\n")
    await site.enqueue("list@localhost")
    with captured_log() as log:
        await site.run()
    assert f"status=deferred (cannot open include file {secret}: Permission denied)" in log.text()
    assert site.mailbox("root") == b""


@root_only
async def test_home_mailbox_written_with_the_users_privileges(site_dir: Path) -> None:
    from mailhost.delivery.filewriter import append_file

    nobody = pwd.getpwnam("nobody")
    home = site_dir / "home"
    home.mkdir()
    home.chmod(0o755)  # not writable by nobody: the kernel refuses, not us
    status = await append_file(
        b"Subject: x\n\nbody\n", "s@x", str(home / "Mailbox"), "r@x", "",
        uid=nobody.pw_uid, gid=nobody.pw_gid, locks=("fcntl",), mailbox=True,
    )  # fmt: skip
    # local(8) opens a mailbox with mbox_open(..., "5.2.0"): bounced, as Postfix.
    assert (status.dsn, status.bounced) == ("5.2.0", True)
    assert status.text.endswith("cannot create file exclusively: Permission denied")
    home.chmod(0o777)
    status = await append_file(
        b"Subject: x\n\nbody\n", "s@x", str(home / "Mailbox"), "r@x", "",
        uid=nobody.pw_uid, gid=nobody.pw_gid, locks=("fcntl", "dotlock"), mailbox=True,
    )  # fmt: skip
    assert status.text == "delivered to mailbox"
    assert (home / "Mailbox").stat().st_uid == nobody.pw_uid


async def test_concurrent_messages_to_one_mailbox_stay_whole(site_dir: Path) -> None:
    site = LocalSite(site_dir, extra="mailbox_delivery_lock = fcntl\n")
    for _ in range(12):
        await site.enqueue(f"{ME_NAME}@localhost")
    manager = site.manager()
    await manager.run_once()
    mbox = site.mailbox(ME_NAME)
    assert mbox.count(b"\nFrom s@client.test  ") + mbox.startswith(b"From ") == 12
    assert mbox.count(b"Subject: hello\n") == 12
    chunks = mbox.split(b"\n\nFrom s@client.test  ")
    assert len(chunks) == 12
    for chunk in chunks:
        assert chunk.count(b"Subject: hello\n\n>From the start\nbody") == 1
