"""cidr: tables through the registry and a *_maps search (DESIGN rules 1, 2):
a pattern table that only ever sees the whole key, never cached, and a broken
file is a temporary failure for a daemon, never "not found"."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailhost.errors import TableOpenError, TableTempFail
from mailhost.tables.cidr import CidrTable
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry, open_table


async def test_cidr_table_through_maps(tmp_path: Path) -> None:
    (tmp_path / "clients").write_text("192.0.2.0/24 REJECT\n::/0 OK\n")
    table = open_table(f"cidr:{tmp_path}/clients")
    assert isinstance(table, CidrTable)
    assert not table.fixed
    assert not table.cacheable
    maps = Maps("smtpd_client_restrictions", [table])
    assert await maps.lookup("192.0.2.7") == "REJECT"
    assert await maps.lookup("2001:DB8::1") == "OK"
    assert await maps.lookup("192.0.2.7", partial=True) is None
    assert await maps.lookup("client.example.com") is None


async def test_missing_cidr_file_fails_temporarily_in_daemons(tmp_path: Path) -> None:
    spec = f"cidr:{tmp_path}/nonexist"
    with pytest.raises(TableOpenError, match="No such file or directory"):
        open_table(spec)
    table = TableRegistry(strict=False).open(spec)
    with pytest.raises(TableTempFail):
        await table.lookup("192.0.2.1")
