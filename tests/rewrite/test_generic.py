"""smtp_generic_maps beyond the recorded cases: one lookup, no recursion,
multi-valued entries, extension propagation, table failures."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mailhost.config import load_config
from mailhost.errors import TableTempFail
from mailhost.resolve.generic import (
    GenericSettings,
    generic_address,
    generic_envelope,
    generic_headers,
)
from mailhost.tables.registry import TableRegistry
from tests.support.maincf import HOST, main_cf

BASE_CF = main_cf(
    HOST, myorigin="example.com", mydestination="", recipient_delimiter="+", nulldns_line=False
)


def settings_for(tmp_path: Path, extra: str) -> GenericSettings:
    (tmp_path / "main.cf").write_text(BASE_CF + extra)
    cfg = load_config(tmp_path)
    return GenericSettings.from_config(cfg, TableRegistry.from_config(cfg))


async def test_one_lookup_no_recursion(tmp_path: Path) -> None:
    s = settings_for(
        tmp_path,
        "smtp_generic_maps = inline:{a@example.com=b@example.com, b@example.com=c@x.test}\n",
    )
    assert await generic_address(s, "a@example.com") == "b@example.com"
    assert await generic_address(s, "") == ""


async def test_extension_propagated_only_for_generic_class(tmp_path: Path) -> None:
    table = "smtp_generic_maps = inline:{joe@example.com=joe@isp.example}\n"
    assert await generic_address(settings_for(tmp_path, table), "joe+x@example.com") == (
        "joe@isp.example"
    )
    s = settings_for(tmp_path, table + "propagate_unmatched_extensions = canonical, generic\n")
    assert await generic_address(s, "joe+x@example.com") == "joe+x@isp.example"


async def test_multi_valued_entry_uses_the_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings_for(tmp_path, "smtp_generic_maps = inline:{{a@example.com=b@x.test, c@x.test}}\n")
    with caplog.at_level(logging.WARNING, logger="mailhost"):
        sender, rcpts = await generic_envelope(s, "a@example.com", ["a@example.com"], "QID9")
    assert (sender, rcpts) == ("b@x.test", ["b@x.test"])
    assert "QID9: multi-valued smtp_generic_maps entry for a@example.com" in caplog.text


async def test_table_failure_raises(tmp_path: Path) -> None:
    s = settings_for(tmp_path, f"smtp_generic_maps = hash:{tmp_path}/missing\n")
    with pytest.raises(TableTempFail):
        await generic_address(s, "a@example.com")
    with pytest.raises(TableTempFail):
        await generic_headers(s, [b"From: a@example.com", b"", b"x"])


async def test_headers_unchanged_without_maps(tmp_path: Path) -> None:
    s = settings_for(tmp_path, "")
    lines = [b"From: a", b"", b"x"]
    assert await generic_headers(s, lines) is lines
