"""The two LMTP stores of the lmtpd tests: a real Dovecot LMTP (once per
test session) and mailhost's lmtpd (per test, on its own site)."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailhost.config import load_config
from mailhost.config.mastercf import parse_master_cf
from mailhost.lmtpd.service import LmtpdService
from mailhost.tables.registry import TableRegistry
from tests import dovecot as dovecot_server
from tests.lmtpd.site import write_dovecot_site, write_mailhost_site
from tests.support.net import free_port

DOVECOT = shutil.which("dovecot")
HAS_LMTP = Path("/usr/lib/dovecot/lmtp").exists()
needs_dovecot = pytest.mark.skipif(
    DOVECOT is None or not HAS_LMTP,
    reason="dovecot LMTP not installed (apt-get install dovecot-lmtpd)",
)


@dataclass
class DovecotLmtp:
    root: Path
    port: int

    def maildir(self, name: str) -> Path:
        return self.root / "home" / name / "Maildir"


@dataclass
class Lmtpd:
    directory: Path
    port: int
    service: LmtpdService
    registry: TableRegistry

    async def close(self) -> None:
        await self.service.close()
        await self.registry.close()

    def maildir(self, name: str) -> Path:
        return self.directory / "vmail" / "example.com" / name


@pytest.fixture(scope="session")
def dovecot_lmtp() -> Iterator[DovecotLmtp]:
    if DOVECOT is None or not HAS_LMTP:
        pytest.skip("dovecot LMTP not installed (apt-get install dovecot-lmtpd)")
    root = Path(tempfile.mkdtemp(prefix="mailhost-lmtpd-dovecot-"))
    port = free_port()
    conf = write_dovecot_site(root, port)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    def log() -> str:
        path = root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    with dovecot_server.running(DOVECOT, conf, root, ready=listening, log=log):
        yield DovecotLmtp(root, port)


async def start_lmtpd(directory: Path, options: str = "", *, line: str | None = None) -> Lmtpd:
    """mailhost's lmtpd on ``directory``'s main.cf (already written), on a
    free loopback port with the master.cf ``options`` (``-o name=value``),
    or as master.cf ``line`` says."""
    cfg = load_config(directory)
    port = free_port()
    line = line or f"127.0.0.1:{port} inet n - n - - lmtpd {options}\n"
    entry = parse_master_cf(line)[0]
    cfg = cfg.with_overrides(entry.override_map())
    registry = TableRegistry.from_config(cfg)
    service = LmtpdService.from_config(cfg, registry)
    await service.listen(entry, cfg.get("queue_directory"))
    return Lmtpd(directory, port, service, registry)


@pytest.fixture
async def lmtpd(tmp_path: Path) -> AsyncIterator[Lmtpd]:
    write_mailhost_site(tmp_path)
    store = await start_lmtpd(tmp_path)
    yield store
    await store.close()
