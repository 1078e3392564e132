"""``mailhost trace`` explains a recipient with the server's own resolver."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.maincf import main_cf


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "virtual").write_text(
        "bob@example.com bob@example.com\nteam@example.com bob@example.com, carol@example.com\n"
        "loop1@example.com loop2@example.com\nloop2@example.com loop1@example.com\n"
    )
    (tmp_path / "main.cf").write_text(
        main_cf(
            myhostname="mx.example.com",
            mydestination="localhost",
            alias_maps="",
            recipient_delimiter="+",
            virtual_mailbox_domains="example.com",
            virtual_alias_maps=f"texthash:{tmp_path}/virtual",
            virtual_mailbox_maps=(
                "inline:{bob@example.com=example.com/bob/, carol@example.com=example.com/carol}"
            ),
            virtual_mailbox_base=tmp_path / "vmail",
            virtual_mailbox_limit_maps="inline:{bob@example.com=1048576, carol@example.com=0}",
            nulldns_line=False,
        )
    )
    return tmp_path


def test_trace_fan_out_shows_lookups_reply_and_mailboxes(
    mailhost_cli: Any, config_dir: Path
) -> None:
    result = mailhost_cli("trace", "-c", str(config_dir), "Team+x@Example.com")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "class:      virtual mailbox (example.com matches virtual_mailbox_domains)" in out
    assert (
        f"lookup: virtual_alias_maps texthash:{config_dir}/virtual 'Team+x@example.com': not found"
        in out
    )
    assert (
        f"lookup: virtual_alias_maps texthash:{config_dir}/virtual 'Team@example.com': found: bob@example.com, carol@example.com"
        in out
    )
    assert "RCPT reply: 250 2.1.5 Ok" in out
    assert (
        f"-> bob+x@example.com  class=virtual mailbox transport=virtual maildir {config_dir}/vmail/example.com/bob/ quota=1048576 bytes"
        in out
    )
    assert (
        f"-> carol+x@example.com  class=virtual mailbox transport=virtual mbox {config_dir}/vmail/example.com/carol quota=unlimited"
        in out
    )


def test_trace_unknown_user_and_relay_denied(mailhost_cli: Any, config_dir: Path) -> None:
    unknown = mailhost_cli("trace", "-c", str(config_dir), "nobody@example.com")
    assert (
        "RCPT reply: 550 5.1.1 <nobody@example.com>: Recipient address rejected: "
        "User unknown in virtual mailbox table" in unknown.stdout
    )
    relay = mailhost_cli(
        "trace", "-c", str(config_dir), "x@elsewhere.test", "--client", "203.0.113.9"
    )
    assert "RCPT reply: 454 4.7.1 <x@elsewhere.test>: Relay access denied" in relay.stdout
    authenticated = mailhost_cli(
        "trace",
        "-c",
        str(config_dir),
        "x@elsewhere.test",
        "--client",
        "203.0.113.9",
        "--sasl-user",
        "bob@example.com",
    )
    assert "RCPT reply: 250 2.1.5 Ok" in authenticated.stdout


def test_trace_alias_loop_json(mailhost_cli: Any, config_dir: Path) -> None:
    result = mailhost_cli("trace", "-c", str(config_dir), "--json", "loop1@example.com")
    report = json.loads(result.stdout)
    assert report["rcpt_reply"] == "250 2.1.5 Ok"
    assert report["end_of_data_reply"] == "451 4.6.0 Alias expansion error"
    assert any(step["kind"] == "lookup" for step in report["steps"])


def test_trace_bad_address_is_one_clear_line(mailhost_cli: Any, config_dir: Path) -> None:
    result = mailhost_cli("trace", "-c", str(config_dir), "a b@@")
    assert result.exit_code == 64
    assert result.stderr.startswith("trace: fatal: bad address")
    assert result.stderr.count("\n") == 1


def test_trace_sender_login_mismatch_is_the_rcpt_reply(mailhost_cli: Any, config_dir: Path) -> None:
    main_cf = config_dir / "main.cf"
    main_cf.write_text(
        main_cf.read_text() + "smtpd_sender_login_maps = inline:{bob@example.com=bob@example.com}\n"
        "smtpd_sender_restrictions = reject_sender_login_mismatch\n"
    )
    args = ("trace", "-c", str(config_dir), "team@example.com", "--sender", "bob@example.com")
    mismatch = mailhost_cli(*args, "--sasl-user", "carol@example.com")
    assert (
        "RCPT reply: 553 5.7.1 <bob@example.com>: Sender address rejected: "
        "not owned by user carol@example.com" in mismatch.stdout
    )
    owner = mailhost_cli(*args, "--sasl-user", "bob@example.com")
    assert "RCPT reply: 250 2.1.5 Ok" in owner.stdout
