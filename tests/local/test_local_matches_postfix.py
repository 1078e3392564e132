"""local(8) cases replayed through mailhost's queue manager and compared with
what Postfix 3.7.11 logged and wrote for the same aliases file
(postfix_local.json, written by record_postfix_local.py): the delivery log
lines (queue ids and delays normalised), the headers of each mailbox and
file, and who owns them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from mailhost.queue.qfile import Client, Envelope, Recipient
from tests.local.record_postfix_local import ALIASES, CASES, FORWARD, INCLUDE
from tests.local.site import LocalSite
from tests.qmgr.helpers import captured_log

RECORDED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "postfix_local.json").read_text(encoding="utf-8")
)

EXTRA = """\
local_recipient_maps =
command_time_limit = 2s
relay_transport = discard:relay
default_transport = discard:default
"""


def _site(directory: Path) -> LocalSite:
    (directory / "out").mkdir()
    (directory / "out").chmod(0o777)
    (directory / "inc").write_text(INCLUDE.format(dir=directory))
    (directory / "forward").mkdir()
    (directory / "forward" / "nobody").write_text(FORWARD.format(dir=directory))
    extra = EXTRA + f"forward_path = {directory}/forward/$user\n"
    return LocalSite(directory, ALIASES.format(dir=directory), extra)


CLIENT = Client("localhost", "127.0.0.1", helo="client.example.org", protocol="ESMTP")


async def _deliver(site: LocalSite, name: str) -> str:
    rcpt = CASES[name]
    envelope = Envelope("sender@client.example", (Recipient(rcpt, rcpt),), 1e10, CLIENT)
    content = [f"Subject: {name}".encode(), b"", b"From the start", b"body"]
    return await site.store().enqueue(envelope, content)


def _normalize(lines: list[str], qid: str, directory: Path) -> list[str]:
    ids = {qid: "QID"}
    for line in lines:
        found = re.search(rf"{qid}: .*forwarded as (\w+)", line)
        if found:
            ids[found.group(1)] = "NEWQID"
    out = []
    for line in lines:
        text = line.split(": ", 1)[1]
        if not (any(f"{q}: to=" in text for q in ids) or text.startswith("warning:")):
            continue
        for q, name in ids.items():
            text = text.replace(q, name)
        text = text.replace(str(directory), "DIR")
        text = re.sub(r"delay=[\d.]+", "delay=D", text)
        out.append(re.sub(r"delays=[\d./]+", "delays=D", text))
    return out


def _postfix_log(name: str) -> list[str]:
    lines: list[str] = RECORDED[name]["log"]
    # Postfix's start-up checks of its own queue directory are not deliveries.
    return [line for line in lines if "not owned by root" not in line and "writable:" not in line]


@pytest.mark.postfix
@pytest.mark.skipif(os.geteuid() != 0, reason="the recording ran as root (root's mailbox)")
@pytest.mark.parametrize("name", list(CASES))
async def test_local_delivery_log_matches_postfix(site_dir: Path, name: str) -> None:
    site = _site(site_dir)
    qid = await _deliver(site, name)
    with captured_log() as log:
        await site.run()
    assert _normalize(log.lines, qid, site_dir) == _postfix_log(name)


def _headers(path: Path) -> list[str]:
    head = path.read_text().split("\n\n", 1)[0].splitlines()
    keep = [h for h in head if h.split(":")[0] in ("Return-Path", "X-Original-To", "Delivered-To")]
    return [re.sub(r"  .*$", "  DATE", head[0]), *keep]


@pytest.mark.postfix
@pytest.mark.skipif(os.geteuid() != 0, reason="ownership as recorded needs root")
async def test_local_files_and_owners_match_postfix(site_dir: Path) -> None:
    site = _site(site_dir)
    await _deliver(site, "mailbox")
    await site.run()  # first, so that it is the first message in root's mailbox
    for name in ("self_and_file", "file", "command", "dot_forward"):
        await _deliver(site, name)
    await site.run()
    files = {"root_mailbox": "spool/root", "copy": "out/copy", "file": "out/file", "cmd": "out/cmd"}
    files = {k: v for k, v in files.items() if k in RECORDED["files"]}
    for key, rel in files.items():
        assert _headers(site_dir / rel) == RECORDED["files"][key], key
    for rel, (uid, gid, mode) in RECORDED["owners"].items():
        st = (site_dir / rel).stat()
        assert [st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)] == [uid, gid, mode], rel


def _mbox_headers(path: Path) -> list[list[str]]:
    messages = []
    for chunk in re.split(r"\n(?=From )", path.read_text()):
        head = chunk.split("\n\n", 1)[0].splitlines()
        names = ("Return-Path", "X-Original-To", "Delivered-To", "Subject")
        keep = [h for h in head[1:] if h.split(":")[0] in names]
        messages.append([re.sub(r"  .*$", "  DATE", head[0]), *keep])
    return messages


@pytest.mark.postfix
@pytest.mark.skipif(os.geteuid() != 0, reason="the recording ran as root (root's mailbox)")
async def test_local_headers_after_expansion_match_postfix(site_dir: Path) -> None:
    """Every message that reached root's mailbox, case by case, in the order
    of the recording: Delivered-To names the queue recipient, forwarded
    copies carry the forwarding recipient's Delivered-To, an owner- alias
    becomes the sender and drops the original recipient."""
    site = _site(site_dir)
    for name in CASES:
        if name == "command_time_limit":
            continue
        await _deliver(site, name)
        await site.run()
    assert _mbox_headers(site_dir / "spool" / "root") == RECORDED["root_mailbox"]
    assert _headers(site_dir / "out" / "listfile")[:3] == RECORDED["files"]["listfile"]


#: Inherited from the daemon's own environment (export_environment), not local(8)'s.
INHERITED = ("LANG=", "MAIL_CONFIG=", "TZ=")


@pytest.mark.postfix
@pytest.mark.skipif(os.geteuid() != 0, reason="the recording ran as root")
async def test_command_environment_matches_postfix(site_dir: Path) -> None:
    """An alias command (root-owned aliases: default_privs, no HOME/SHELL)
    and a .forward command (the user's HOME and SHELL), both run in the
    queue directory when the home directory does not exist."""
    site = _site(site_dir)
    for name in ("command_env", "dot_forward"):
        await _deliver(site, name)
    await site.run()
    for name, expected in RECORDED["environments"].items():
        lines = (site_dir / "out" / name).read_text().splitlines()
        ours = sorted(line.replace(str(site_dir), "DIR") for line in lines)
        assert [v for v in ours if not v.startswith(INHERITED)] == [
            v for v in expected if not v.startswith(INHERITED)
        ], name


@pytest.mark.postfix
async def test_missing_alias_database_defers_matches_postfix(site_dir: Path) -> None:
    """The delivery line is Postfix's; the table warnings are mailhost's own
    (``is unavailable`` when the table is opened, then the alias_maps lookup
    error) and its index is ``.mhdb``."""
    site = LocalSite(site_dir)
    (site_dir / "aliases.mhdb").unlink()
    qid = await site.enqueue("root@localhost")
    with captured_log() as log:
        await site.run()
    expected = RECORDED["missing_alias_database"]
    ours = _normalize(log.lines, qid, site_dir)
    assert [line for line in ours if line.startswith("QID")] == expected[-1:]
    assert f"hash:{site_dir}/aliases is unavailable. open database" in log.text()
