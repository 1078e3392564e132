"""``mailhost quota show`` and ``mailhost quota recalc`` against a provisioning
database reached through the shipped sqlite query files (examples/sqlite)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mailhost.quota.maildirsize import FILENAME

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sqlite"


@pytest.fixture
def site(tmp_path: Path, mailhost_cli: Any) -> Path:
    db = tmp_path / "mailhost.sqlite"
    for name in (
        "virtual_mailbox_maps.cf",
        "virtual_mailbox_limit_maps.cf",
        "mailhost_quota_domain_maps.cf",
    ):
        text = (EXAMPLES / name).read_text()
        (tmp_path / name).write_text(text.replace("/var/lib/mailhost/mailhost.sqlite", str(db)))
    (tmp_path / "main.cf").write_text(
        "mydestination =\nalias_maps =\nvirtual_mailbox_domains = example.com\n"
        f"mailhost_database_url = sqlite:///{db}\n"
        f"virtual_mailbox_base = {tmp_path}/vmail\n"
        f"virtual_mailbox_maps = sqlite:{tmp_path}/virtual_mailbox_maps.cf\n"
        f"virtual_mailbox_limit_maps = sqlite:{tmp_path}/virtual_mailbox_limit_maps.cf\n"
        f"mailhost_quota_domain_maps = sqlite:{tmp_path}/mailhost_quota_domain_maps.cf\n"
        "virtual_uid_maps = static:5000\nvirtual_gid_maps = static:5000\n"
    )

    def ok(*args: str, input: str | None = None) -> None:
        result = mailhost_cli(*args, "-c", str(tmp_path), input=input)
        assert result.exit_code == 0, result.stderr

    ok("db", "upgrade")
    ok("domain", "add", "example.com")
    ok("mailbox", "add", "bob@example.com", "--quota", "10000", "--password-stdin", input="pw\n")
    ok("mailbox", "add", "carol@example.com", "--quota", "0", "--password-stdin", input="pw\n")
    ok("mailbox", "add", "dave@example.com", "--password-stdin", "--inactive", input="pw\n")
    bob = tmp_path / "vmail" / "example.com" / "bob"
    for sub in ("tmp", "new", "cur"):
        (bob / sub).mkdir(parents=True)
    (bob / "new" / "1.M1P1.h,S=2500,W=2550").write_bytes(b"x" * 2500)
    (bob / "cur" / "2.M2P2.h,S=1500,W=1520:2,S").write_bytes(b"y" * 1500)
    (bob / ".Trash" / "cur").mkdir(parents=True)
    (bob / ".Trash" / "cur" / "3.M3P3.h:2,ST").write_bytes(b"z" * 1000)  # no S=: stat()
    return tmp_path


def test_show_text_and_json(site: Path, mailhost_cli: Any) -> None:
    result = mailhost_cli("quota", "show", "-c", str(site), "Bob@Example.com")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "address:  bob@example.com",
        f"path:     {site}/vmail/example.com/bob/",
        "limit:    10000 bytes (from virtual_mailbox_limit_maps)",
        "usage:    5000 bytes, 3 messages (50.0%)",
    ]
    # show only looks: no maildirsize appears.
    assert not (site / "vmail" / "example.com" / "bob" / FILENAME).exists()
    data = json.loads(
        mailhost_cli("quota", "show", "-c", str(site), "--json", "carol@example.com").stdout
    )
    assert data == {
        "address": "carol@example.com",
        "path": f"{site}/vmail/example.com/carol/",
        "enforced": True,
        "limit_source": "configured",
        "limit_bytes": 0,
        "limit_messages": 0,
        "used_bytes": 0,
        "used_messages": 0,
        "percent": None,
    }


def test_recalc_one_rewrites_maildirsize_as_dovecot(site: Path, mailhost_cli: Any) -> None:
    bob = site / "vmail" / "example.com" / "bob"
    (bob / FILENAME).write_bytes(b"10000S\n99 99\n")  # wrong, but trusted by readers
    result = mailhost_cli("quota", "recalc", "-c", str(site), "bob@example.com")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "bob@example.com: 5000 bytes, 3 messages\n"
    assert (bob / FILENAME).read_bytes() == b"10000S\n5000 3\n"
    if os.geteuid() == 0:  # as root the file is handed to the virtual_uid_maps owner
        assert (bob / FILENAME).stat().st_uid == 5000


def test_recalc_all_uses_the_database(site: Path, mailhost_cli: Any) -> None:
    result = mailhost_cli("quota", "recalc", "-c", str(site), "--all")
    assert result.exit_code == 0, result.stderr
    # dave is inactive: not in virtual_mailbox_maps, reported and skipped.
    assert "warning: dave@example.com: not found in virtual_mailbox_maps" in result.stderr
    assert "recalculating" in result.stderr
    assert result.stdout.splitlines()[-1] == "2 mailbox(es) recalculated, 1 skipped"
    bob = site / "vmail" / "example.com" / "bob"
    assert (bob / FILENAME).read_bytes() == b"10000S\n5000 3\n"
    # The database's usage cache now shows the recount.
    shown = json.loads(
        mailhost_cli("mailbox", "show", "-c", str(site), "bob@example.com", "--json").stdout
    )
    assert (shown["used_bytes"], shown["used_messages"]) == (5000, 3)


def test_errors_are_one_line(site: Path, mailhost_cli: Any) -> None:
    unknown = mailhost_cli("quota", "show", "-c", str(site), "nobody@example.com")
    assert unknown.exit_code == 67
    assert unknown.stderr == (
        "mailhost: fatal: nobody@example.com: not found in virtual_mailbox_maps\n"
    )
    both = mailhost_cli("quota", "recalc", "-c", str(site), "--all", "bob@example.com")
    assert both.exit_code == 64
    assert "give either ADDRESS or --all" in both.stderr
    bad = mailhost_cli("quota", "show", "-c", str(site), "<<bad")
    assert bad.exit_code == 64
    assert bad.stderr.startswith("mailhost: fatal: bad address")


def test_trace_shows_usage_and_the_quota_verdict(site: Path, mailhost_cli: Any) -> None:
    result = mailhost_cli("trace", "-c", str(site), "bob@example.com", "--size", "6000")
    assert result.exit_code == 0, result.stderr
    assert (
        "RCPT reply: 554 5.2.2 <bob@example.com>: Recipient address rejected: "
        "Quota exceeded (mailbox for user is full)"
    ) in result.stdout
    assert "quota=10000 bytes used=5000 bytes, 3 messages (50.0%)" in result.stdout
    roomy = mailhost_cli("trace", "-c", str(site), "bob@example.com", "--size", "5000", "--json")
    data = json.loads(roomy.stdout)
    assert data["rcpt_reply"] == "250 2.1.5 Ok"
    (bob,) = data["recipients"]
    assert bob["quota_usage"] == {
        "bytes": 5000,
        "messages": 3,
        "limit_bytes": 10000,
        "limit_messages": 0,
        "percent": 50.0,
    }


def test_domain_maxquota_caps_through_the_example_query(site: Path, mailhost_cli: Any) -> None:
    def ok(*args: str, input: str | None = None) -> None:
        result = mailhost_cli(*args, "-c", str(site), input=input)
        assert result.exit_code == 0, result.stderr

    ok("domain", "add", "capped.example", "--max-quota", "2M")
    ok("mailbox", "add", "x@capped.example", "--quota", "2M", "--password-stdin", input="pw\n")
    show = ["quota", "show", "-c", str(site), "--json", "x@capped.example"]
    assert (
        json.loads(mailhost_cli(*show).stdout)["limit_bytes"] == 2 * 1024000
    )  # MB of mailhost_quota_multiplier bytes
    # The domain's maximum is lowered later (PostfixAdmin allows it): the cap wins.
    db = site / "mailhost.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE domain SET maxquota = 1 WHERE domain = 'capped.example'")
    assert json.loads(mailhost_cli(*show).stdout)["limit_bytes"] == 1024000
