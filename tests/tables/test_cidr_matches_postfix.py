"""``mailhost postmap -q KEY cidr:FILE`` prints exactly what Postfix 3.7.11's
``postmap -q`` printed for the same files and keys: stdout, stderr (warnings
for skipped rules, the fatal text for a missing file) and exit status
(recorded in postfix_cidr.json by record_postfix_cidr.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.tables.postfix_cidr_cases import CASES, SOURCES

EXPECTED: dict[str, list[Any]] = json.loads(
    (Path(__file__).parent / "postfix_cidr.json").read_text(encoding="utf-8")
)


@pytest.fixture(scope="module")
def cidr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cidr")
    for name, text in SOURCES.items():
        (directory / name).write_bytes(text.encode())
    return directory


def test_every_case_was_recorded() -> None:
    assert sorted(EXPECTED) == sorted(case_id for case_id, _, _ in CASES)


@pytest.mark.postfix
@pytest.mark.parametrize(("case_id", "name", "key"), CASES, ids=[c[0] for c in CASES])
def test_cidr_lookup_matches_postfix(
    mailhost_cli: Any, cidr_dir: Path, case_id: str, name: str, key: str
) -> None:
    result = mailhost_cli("postmap", "-q", key, f"cidr:{cidr_dir}/{name}")
    stdout, stderr, status = EXPECTED[case_id]
    ours = result.stderr.replace(str(cidr_dir), "{dir}")
    assert (result.stdout, ours, result.exit_code) == (stdout, stderr, status)
