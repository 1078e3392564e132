"""``fail:`` tables and a stale ``hash:`` index under ``mailhost postmap -q`` /
``postalias -q``, compared with what Postfix 3.7.11 printed for the same
commands on the same files (postfix_fail_hash.json, recorded by
record_postfix_fail_hash.py; each test is named after its case).

Deliberate differences, as for every table (docs/tables.md): the index is
``FILE.mhdb``, not ``FILE.db``, and a temporary lookup failure exits 75
(EX_TEMPFAIL) where Postfix exits 1 — the text is Postfix's.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mailhost.errors import TableTempFail
from mailhost.tables.aliases import build_alias_index
from mailhost.tables.hash import build_index
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

RECORDED: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "postfix_fail_hash.json").read_text(encoding="utf-8")
)
SOURCES = {"src": "a b\nkey Value With Case\n", "aliases": "root: admin\npostmaster: root\n"}
TEMPORARY = (": query error: ", ": sequence error: ")


def prepare(directory: Path, times: str) -> None:
    """The recorder's files and modification times, with our index names."""
    for name, text in SOURCES.items():
        (directory / name).write_text(text, encoding="utf-8")
    build_index(str(directory / "src"))
    build_alias_index(str(directory / "aliases"), "localhost")
    now = time.time()
    for source in SOURCES:
        if times in ("stale", "recent"):
            os.utime(directory / f"{source}.mhdb", (now - 3600, now - 3600))
        if times == "stale":
            os.utime(directory / source, (now - 600, now - 600))


def run_case(
    case_id: str, mailhost_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = RECORDED[case_id]
    prepare(tmp_path, case["times"])
    monkeypatch.chdir(tmp_path)
    result = mailhost_cli(*case["argv"], input=case["stdin"])
    stderr = case["stderr"].replace(".db ", ".mhdb ")
    status = case["status"]
    if any(marker in stderr for marker in TEMPORARY):
        status = 75  # EX_TEMPFAIL by design (module docstring)
    assert (result.stdout, result.stderr, result.exit_code) == (case["stdout"], stderr, status)


CASES = sorted(RECORDED)


@pytest.mark.postfix
@pytest.mark.parametrize("case_id", [c for c in CASES if c.startswith("fail-")])
def test_fail_table_matches_postfix(
    case_id: str, mailhost_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case_id, mailhost_cli, tmp_path, monkeypatch)


@pytest.mark.postfix
@pytest.mark.parametrize("case_id", [c for c in CASES if c.startswith("hash-stale-")])
def test_hash_stale_index_query_matches_postfix(
    case_id: str, mailhost_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # postmap -q / postalias -q warn about a stale index and answer from it:
    # they never rebuild it (only the daemon does, docs/tables.md).
    index = tmp_path / ("aliases.mhdb" if "postalias" in case_id else "src.mhdb")
    run_case(case_id, mailhost_cli, tmp_path, monkeypatch)
    assert index.stat().st_mtime < time.time() - 3000  # untouched


async def test_fail_table_defers_through_maps() -> None:
    registry = TableRegistry()  # lenient, as in the daemons
    maps = Maps.from_value("virtual_alias_maps", "inline:{a=1}, fail:defer", registry)
    assert await maps.lookup("a") == "1"  # an earlier table still answers
    with pytest.raises(TableTempFail, match="table fail:defer: query error: Application error"):
        await maps.lookup("b")
    await registry.close()
