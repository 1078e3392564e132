"""Symbolic links below the mailbox base, replayed against what Postfix 3.7
and Dovecot 2.3 were recorded doing (postfix_symlinks.json, written by
record_postfix_symlinks.py): every case of the recorder, through the real
queue manager and transports.

Where Postfix refused the link (a loop, a mailbox file that is a link), the
status line is Postfix's, word for word.  Where Postfix followed it — it
writes as the recipient, so a link only leads where the recipient could
write — mailhost, which writes as root, defers instead with the text
Postfix gives for a link it cannot follow, logs a warning naming the link,
and creates nothing where the link points (docs/storage.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhost.queue.qfile import Envelope, Recipient
from tests.delivery.record_postfix_symlinks import LOCAL_ALIASES, VIRTUAL_CASES, prepare
from tests.local.site import LocalSite
from tests.qmgr.helpers import Site, captured_log

RECORDED = json.loads((Path(__file__).parent / "postfix_symlinks.json").read_text())
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="Postfix's cases are owned by nobody")

#: Postfix followed these links (status=sent, written outside); mailhost
#: defers with Postfix's text for a link it cannot follow.
DEVIATIONS = {
    "maildir_new_symlink": "dsn=4.2.0, status=deferred (maildir delivery failed: create maildir "
    "file DIR/vmail/example.com/newlink/new/NAME: Too many levels of symbolic links)",
    "maildir_tmp_symlink": "dsn=4.2.0, status=deferred (maildir delivery failed: create maildir "
    "file DIR/vmail/example.com/tmplink/tmp/NAME: Too many levels of symbolic links)",
    "maildir_symlink": "dsn=4.2.0, status=deferred (maildir delivery failed: create maildir "
    "file DIR/vmail/example.com/mdlink/tmp/NAME: Too many levels of symbolic links)",
    "domain_symlink": "dsn=4.2.0, status=deferred (maildir delivery failed: create maildir "
    "file DIR/vmail/linked.example/user/tmp/NAME: Too many levels of symbolic links)",
    "mbox_in_symlinked_directory": "dsn=4.2.0, status=deferred (delivery failed to mailbox "
    "DIR/vmail/example.com/boxdir/box: cannot open file: Too many levels of symbolic links)",
}


def status_of(line: str) -> str:
    """``dsn=..., status=... (...)`` of a delivery line, Maildir names as NAME."""
    found = re.search(r"dsn=.*$", line)
    assert found, line
    return re.sub(r"/(tmp|new)/[0-9][^:\s]*", r"/\1/NAME", found.group(0))


def outside(directory: Path) -> list[str]:
    return sorted(
        str(p.relative_to(directory))
        for p in (directory / "outside").rglob("*")
        if not p.is_symlink() and p.is_file() and p.stat().st_size
    )


@AS_ROOT
@pytest.mark.parametrize("case", sorted(VIRTUAL_CASES))
async def test_virtual_symlink_case_matches_postfix(tmp_path: Path, case: str) -> None:
    value, steps = VIRTUAL_CASES[case]
    mailboxes = f"inline:{{{case}@example.com={value}}}"
    site = Site(
        tmp_path,
        extra=f"virtual_mailbox_maps = {mailboxes}\nvirtual_uid_maps = static:65534\n"
        "virtual_gid_maps = static:65534\n",
    )
    (tmp_path / "outside").mkdir()
    prepare(tmp_path, steps)
    envelope = Envelope("sender@client.example", (Recipient(f"{case}@example.com", ""),), 0.0)
    await site.store().enqueue(envelope, [b"Subject: t", b"", b"body"])
    with captured_log() as log:
        await site.manager().run_once()
    (line,) = [x for x in log.lines if f"to=<{case}@example.com>" in x]
    (recorded,) = RECORDED["virtual"][case]["log"]
    mine = status_of(line).replace(str(tmp_path), "DIR")
    assert mine == DEVIATIONS.get(case, status_of(recorded))
    if case in DEVIATIONS or "symbolic link" in mine:
        assert re.search(r"warning: .*symbolic link", log.text()), log.text()
    assert outside(tmp_path) == []


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory default_privs (nobody) can reach, as the recorder's."""
    directory = Path(tempfile.mkdtemp(prefix="mailhost-symlinks-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@AS_ROOT
@pytest.mark.parametrize("case", sorted(k for k in RECORDED["local"] if k != "written_outside"))
async def test_local_symlink_case_matches_postfix(open_dir: Path, case: str) -> None:
    tmp_path = open_dir
    site = LocalSite(tmp_path, LOCAL_ALIASES.format(dir=tmp_path))
    site.spool.chmod(0o1777)
    for sub in ("out", "outside"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub).chmod(0o777)
    for name in ("nobodybox", "target", "file"):
        (tmp_path / "outside" / name).touch()
        os.chown(tmp_path / "outside" / name, 65534, 65534)
    (site.spool / "nobody").symlink_to(tmp_path / "outside" / "nobodybox")
    (tmp_path / "out" / "link").symlink_to(tmp_path / "outside" / "target")
    (tmp_path / "out" / "loop").symlink_to("loop")
    (tmp_path / "outlink").symlink_to(tmp_path / "outside")
    rcpt = RECORDED["local"][case]["rcpt"]
    await site.enqueue(rcpt)
    with captured_log() as log:
        await site.run()
    (line,) = [x for x in log.lines if f"to=<{rcpt}>" in x and "relay=local" in x]
    (recorded,) = RECORDED["local"][case]["log"]
    assert status_of(line).replace(str(tmp_path), "DIR") == status_of(recorded)
    # Postfix writes a file destination below a linked directory with the
    # alias owner's privileges (default_privs here): so does mailhost.
    written = ["outside/file"] if case == "file_in_symlinked_directory" else []
    assert outside(tmp_path) == written


@pytest.mark.parametrize("link", ["maildirsize", "new", "domain"])
async def test_rcpt_quota_with_a_symlink_matches_dovecot_quota_status(
    tmp_path: Path, link: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Postfix + Dovecot's quota-status answer DEFER_IF_PERMIT "Internal quota
    # calculation error" for a maildirsize it cannot open (recorded); mailhost
    # says the same for any link on the way, and logs the file.
    from mailhost.config import load_config
    from mailhost.quota.rcpt import RcptQuotaCheck
    from mailhost.resolve.resolver import Resolver, ResolverSettings
    from mailhost.tables.registry import TableRegistry
    from tests.support.maincf import main_cf

    base, elsewhere = tmp_path / "vmail", tmp_path / "outside"
    (tmp_path / "main.cf").write_text(
        main_cf(
            myhostname="mx.example.com",
            mydestination="",
            alias_maps="",
            virtual_mailbox_domains="example.com",
            virtual_mailbox_base=base,
            virtual_mailbox_maps="inline:{full@example.com=example.com/full/}",
            virtual_mailbox_limit_maps="static:2000",
            nulldns_line=False,
        )
    )
    maildir = base / "example.com" / "full"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
        (elsewhere / sub).mkdir(parents=True, exist_ok=True)
    (elsewhere / "maildirsize").write_bytes(b"2000S\n0 0\n")
    if link == "maildirsize":
        (maildir / "maildirsize").symlink_to(elsewhere / "maildirsize")
    elif link == "new":
        (maildir / "new").rmdir()
        (maildir / "new").symlink_to(elsewhere / "new")
    else:
        (base / "example.com").rename(tmp_path / "real-domain")
        (base / "example.com").symlink_to(tmp_path / "real-domain")
    cfg = load_config(tmp_path)
    registry = TableRegistry.from_config(cfg)
    resolver = Resolver(ResolverSettings.from_config(cfg, registry))
    check = RcptQuotaCheck.from_config(cfg, registry, resolver)
    assert check is not None
    reply = await check.check("full@example.com")
    recorded = RECORDED["quota_status"]["replies"]["maildirsize_loop"]
    assert str(reply) == recorded
    assert any("quota check failed" in r.getMessage() for r in caplog.records)
    assert (elsewhere / "maildirsize").read_bytes() == b"2000S\n0 0\n"
