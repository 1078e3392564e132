"""``mailhost status`` without a running server: what is down and why."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from mailhost.cli.status import probe_target, table_specs
from mailhost.config import load_config
from tests.observe.test_serve_observe import mailhost
from tests.support.server import free_port


def test_status_reports_unreachable_tables_and_refused_listeners(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "main.cf").write_text(
        f"queue_directory = {tmp_path}/queue\n"
        f"data_directory = {tmp_path}/data\n"
        "alias_maps =\n"
        "local_recipient_maps =\n"
        f"virtual_mailbox_maps = inline:{{a@example.com=x}}, hash:{tmp_path}/missing\n"
        "virtual_mailbox_domains = example.com\n"
    )
    (tmp_path / "master.cf").write_text(f"127.0.0.1:{port} inet n - n - - smtpd\n")
    (tmp_path / "queue" / "deferred").mkdir(parents=True)
    (tmp_path / "queue" / "deferred" / "4ABCDEF").write_bytes(b"x")
    result = mailhost(tmp_path, "status", "--json")
    assert result.returncode == 69
    report = json.loads(result.stdout)
    assert report["healthy"] is False
    assert report["listeners"] == [
        {
            "service": f"127.0.0.1:{port}",
            "address": "127.0.0.1",
            "port": port,
            "accepting": False,
            "detail": "Connection refused",
        }
    ]
    assert report["queues"]["deferred"] == 1
    tables = {t["table"]: (t["parameter"], t["reachable"]) for t in report["tables"]}
    assert tables == {
        "inline:{a@example.com=x}": ("virtual_mailbox_maps", True),
        f"hash:{tmp_path}/missing": ("virtual_mailbox_maps", False),
    }
    assert report["mailboxes"] == []
    assert report["mailboxes_error"].startswith("no database at sqlite:///")
    people = mailhost(tmp_path, "status")
    assert people.returncode == 69
    assert "NOT accepting  Connection refused" in people.stdout
    assert f"hash:{tmp_path}/missing  UNREACHABLE" in people.stdout
    assert people.stderr == ""


def test_listener_probe_target_is_always_loopback() -> None:
    assert probe_target("0.0.0.0") == "127.0.0.1"
    assert probe_target("::") == "::1"
    assert probe_target("127.0.0.2") == "127.0.0.2"
    assert probe_target("192.0.2.1") is None
    assert probe_target("mx.example.com") is None


def test_listener_accepting(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        (tmp_path / "main.cf").write_text(
            f"queue_directory = {tmp_path}/q\nalias_maps =\nlocal_recipient_maps =\n"
        )
        (tmp_path / "master.cf").write_text(f"127.0.0.1:{port} inet n - n - - smtpd\n")
        result = mailhost(tmp_path, "status", "--json")
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["listeners"][0]["accepting"] is True


def test_table_specs_once_each(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(
        "virtual_mailbox_maps = inline:{a=b}\n"  # also virtual_mailbox_domains' default
        "mydestination = localhost, !inline:{x=y}, static:z\n"
        "alias_maps =\n"
        "local_recipient_maps =\n"
    )
    assert table_specs(load_config(tmp_path)) == [
        ("virtual_mailbox_maps", "inline:{a=b}"),
        ("mydestination", "inline:{x=y}"),
        ("mydestination", "static:z"),
    ]


def test_one_lmtp_store_under_three_spellings_is_listed_once(tmp_path: Path) -> None:
    # lmtp:inet:HOST:PORT, lmtp:HOST:PORT and lmtp:[HOST]:PORT name one
    # address: probed and listed once (nobody listens there: it is down).
    port = free_port()
    (tmp_path / "main.cf").write_text(
        f"queue_directory = {tmp_path}/queue\n"
        "alias_maps =\nlocal_recipient_maps =\n"
        "virtual_mailbox_domains = example.com\n"
        f"virtual_transport = lmtp:inet:127.0.0.1:{port}\n"
        f"transport_maps = inline:{{other.example=lmtp:[127.0.0.1]:{port}}}\n"
    )
    (tmp_path / "master.cf").write_text(
        f"relay unix - - n - - smtp\n  -o relay_transport=lmtp:127.0.0.1:{port}\n"
    )
    report = json.loads(mailhost(tmp_path, "status", "--json").stdout)
    assert [(s["destination"], s["address"], s["state"]) for s in report["stores"]] == [
        (f"lmtp:inet:127.0.0.1:{port}", f"127.0.0.1:{port}", "down")
    ]
