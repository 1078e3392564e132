"""Session-wide policy daemons for the check_policy_service tests: postgrey
and a loopback DNS zone for policyd-spf (policy_daemons.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.smtp.dnsserver import DnsServer, Zone
from tests.smtpd_check.policy_daemons import postgrey


@pytest.fixture(scope="session")
def postgrey_port() -> Iterator[int]:
    # Not under pytest's 0700 temporary root: postgrey runs as its own user.
    directory = Path(tempfile.mkdtemp(prefix="postgrey-"))
    directory.chmod(0o755)
    try:
        with postgrey(directory) as port:
            yield port
    finally:
        shutil.rmtree(directory, ignore_errors=True)


#: The SPF records policyd-spf is judged by.
SPF_ZONE = (
    ("spf-fail.example", "TXT", '"v=spf1 -all"'),
    ("spf-pass.example", "TXT", '"v=spf1 ip4:192.0.2.0/24 -all"'),
)


@pytest.fixture(scope="session")
def spf_dns() -> Iterator[DnsServer]:
    zone = Zone()
    for name, rdtype, value in SPF_ZONE:
        zone.add(name, rdtype, value)
    with DnsServer(zone) as server:
        yield server
