"""examples/internet-mx — an Internet-facing MX main.cf with access maps, a
cidr client table, a pcre header_checks file, two DNS lists and rate limits —
starts with ``mailhost serve`` without a configuration error, and its cheap
restrictions answer with the texts Postfix gives (the same reply shapes are
compared with Postfix 3.7.11 in test_postfix_restrictions.py).

The copy under test listens on loopback, trusts only 127.0.0.1 (clients come
from 127.0.0.2) and asks the loopback DNS server that knows no names.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import trustme

from tests import nulldns
from tests.smtpd_check.scenario import run_dialogue
from tests.support.net import free_port
from tests.support.server import ROOT, ServerProcess

EXAMPLE = ROOT / "examples" / "internet-mx"
CLIENT = "127.0.0.2"
FOOTER = f" (contact postmaster@example.com, client {CLIENT})"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("internet-mx")
    shutil.copytree(EXAMPLE, directory, dirs_exist_ok=True)
    port = free_port()
    local = {
        "inet_interfaces": "127.0.0.1\ninet_protocols = ipv4",
        "mynetworks": "127.0.0.1/32",
        "virtual_mailbox_base": str(directory / "vmail"),
    }
    lines = []
    for line in (directory / "main.cf").read_text().splitlines():
        name = line.split("=", 1)[0].strip()
        lines.append(f"{name} = {local[name]}" if name in local and "=" in line else line)
    lines.append(f"queue_directory = {directory / 'queue'}")
    (directory / "main.cf").write_text("\n".join(lines) + "\n" + nulldns.main_cf_line())
    master = (
        (directory / "master.cf").read_text().replace("smtp      inet", f"127.0.0.1:{port} inet")
    )
    (directory / "master.cf").write_text(master)
    proc = ServerProcess(directory, {"mx": port}, trustme.CA(), directory / "maillog")
    proc.queue_kind = "cli"
    proc.start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0


def test_internet_mx_example_starts_without_configuration_error(server: ServerProcess) -> None:
    started = server.log()
    assert "daemon started" in started
    for word in ("fatal", "error", "warning", "Traceback", "unknown"):
        assert word not in started, started


def session(server: ServerProcess, *lines: str) -> list[list[str]]:
    steps = (("", 1), *((line, 1) for line in lines), ("QUIT", 1))
    return run_dialogue(server.ports["mx"], CLIENT, steps)[1:-1]


def test_internet_mx_helo_required_with_footer(server: ServerProcess) -> None:
    assert session(server, "MAIL FROM:<someone@client.test>") == [
        [f"503 5.5.1 Error: send HELO/EHLO first{FOOTER}"]
    ]


def test_internet_mx_no_open_relay(server: ServerProcess) -> None:
    got = session(server, "EHLO client.test", "MAIL FROM:<someone@client.test>",
                  "RCPT TO:<victim@elsewhere.test>")  # fmt: skip
    assert got[-1] == [f"554 5.7.1 <victim@elsewhere.test>: Relay access denied{FOOTER}"]


def test_internet_mx_helo_claiming_to_be_us(server: ServerProcess) -> None:
    got = session(server, "EHLO mx.example.com", "MAIL FROM:<someone@client.test>",
                  "RCPT TO:<alice@example.com>")  # fmt: skip
    assert got[-1] == [f"554 5.7.1 <mx.example.com>: Helo command rejected: You are not me{FOOTER}"]


def test_internet_mx_forged_local_sender(server: ServerProcess) -> None:
    got = session(server, "EHLO client.test", "MAIL FROM:<alice@example.com>",
                  "RCPT TO:<bob@example.com>")  # fmt: skip
    assert got[-1] == [
        "554 5.7.1 <alice@example.com>: Sender address rejected: "
        f"Use the submission service to send as example.com{FOOTER}"
    ]


def test_internet_mx_unknown_and_retired_recipients(server: ServerProcess) -> None:
    got = session(server, "EHLO client.test", "MAIL FROM:<someone@client.test>",
                  "RCPT TO:<nobody@example.com>", "RCPT TO:<old-sales@example.com>")  # fmt: skip
    assert got[-2:] == [
        [
            "550 5.1.1 <nobody@example.com>: Recipient address rejected: "
            f"User unknown in virtual mailbox table{FOOTER}"
        ],
        [
            "550 5.1.1 <old-sales@example.com>: Recipient address rejected: "
            f"This address was retired; write to sales@example.com{FOOTER}"
        ],
    ]


def test_internet_mx_postmaster_is_a_spam_lover(server: ServerProcess) -> None:
    got = session(server, "EHLO client.test", "MAIL FROM:<someone@client.test>",
                  "RCPT TO:<postmaster@example.com>")  # fmt: skip
    assert got[-1] == ["250 2.1.5 Ok"]


def test_internet_mx_vrfy_disabled(server: ServerProcess) -> None:
    assert session(server, "EHLO client.test", "VRFY alice@example.com")[-1] == [
        f"502 5.5.1 VRFY command is disabled{FOOTER}"
    ]


def test_internet_mx_clean_client_passes_the_dns_lists(server: ServerProcess) -> None:
    got = session(server, "EHLO client.test", "MAIL FROM:<someone@client.test>",
                  "RCPT TO:<alice@example.com>")  # fmt: skip
    assert got[-1] == ["250 2.1.5 Ok"]
