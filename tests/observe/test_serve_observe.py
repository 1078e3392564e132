"""End to end: a running ``mailhost serve`` with ``mailhost_metrics_listen``
set; mail goes through, ``/metrics`` is scraped over HTTP on loopback and
``mailhost status`` reports listeners, queues, tables and mailbox usage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.maincf import alice_site
from tests.support.server import ROOT, free_port, new_messages, queued_as, serve_cli, smtp_session


def mailhost(directory: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailhost", *args, "-c", str(directory)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_and_status_of_a_running_server(tmp_path: Path) -> None:
    base = tmp_path / "vmail"
    metrics_port = free_port()
    (tmp_path / "main.cf").write_text(
        alice_site(tmp_path)
        + f"mailhost_metrics_listen = 127.0.0.1:{metrics_port}\n"
        + f"mailhost_database_url = sqlite:///{tmp_path}/mailhost.sqlite\n"
        # One process: /metrics counts worker 0's sessions only, and the
        # test's session must be the one counted.
        + "mailhost_worker_processes = 1\n"
    )
    for args, stdin in [
        (("db", "upgrade"), ""),
        (("domain", "add", "example.com"), ""),
        (("mailbox", "add", "alice@example.com", "--quota", "10M", "--password-stdin"), "pw\n"),
    ]:
        result = mailhost(tmp_path, *args, stdin=stdin)
        assert result.returncode == 0, result.stderr
    server, port = serve_cli(tmp_path)
    try:
        with smtp_session(port) as client:
            assert client.rcpt("nobody@example.com")[0] == 550
            assert client.rcpt("alice@example.com")[0] == 250
            code, reply = client.data(b"Subject: metrics\r\n\r\n" + b"x" * 2000 + b"\r\n")
            assert code == 250
            qid = queued_as(reply)
        server.wait_log(f"{qid}: removed")
        assert new_messages(base / "example.com" / "alice")
        got = scrape(metrics_port)
        running = mailhost(tmp_path, "status", "--json")
        people = mailhost(tmp_path, "status")
    finally:
        assert server.stop() == 0
    assert got[("mailhost_smtpd_messages_accepted_total", frozenset())] == 1
    reject = frozenset({("stage", "RCPT"), ("code", "550"), ("status", "5.1.1")})
    assert got[("mailhost_smtpd_rejects_total", reject)] == 1
    assert got[("mailhost_qmgr_deliveries_total", frozenset({("status", "sent")}))] == 1
    assert got[("mailhost_queue_messages", frozenset({("queue", "active")}))] == 0
    found = frozenset(
        {("parameter", "virtual_mailbox_maps"), ("type", "inline"), ("result", "found")}
    )
    assert got[("mailhost_table_lookup_seconds_count", found)] >= 1

    assert running.returncode == 0, running.stdout + running.stderr
    report = json.loads(running.stdout)
    assert report["healthy"] is True
    assert [(item["port"], item["accepting"]) for item in report["listeners"]] == [
        (port, True),
        (metrics_port, True),
    ]
    assert report["queues"] == {
        "maildrop": 0, "incoming": 0, "active": 0, "deferred": 0, "hold": 0, "corrupt": 0,
    }  # fmt: skip
    assert {t["table"]: t["reachable"] for t in report["tables"]} == {
        "inline:{alice@example.com=example.com/alice/}": True,
        "inline:{postmaster@example.com=alice@example.com}": True,
        "static:5000": True,
    }
    (alice,) = report["mailboxes"]
    assert alice["username"] == "alice@example.com"
    assert alice["quota_bytes"] == 10 * 1024000  # M: mailhost_quota_multiplier bytes
    assert alice["used_messages"] == 1
    assert 2000 < alice["used_bytes"] < 4000
    assert people.returncode == 0
    assert f"127.0.0.1:{port}  accepting" in people.stdout
    assert "alice@example.com" in people.stdout

    stopped = mailhost(tmp_path, "status", "--json")
    assert stopped.returncode == 69
    assert [item["accepting"] for item in json.loads(stopped.stdout)["listeners"]] == [False, False]
