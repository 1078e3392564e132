"""``mailhost postmap -q KEY pcre:FILE`` prints exactly what Postfix 3.7.11's
``postmap -q`` printed (recorded in postfix_pcre.json by
record_postfix_pcre.py), and every PCRE construct Python's ``re`` cannot match
exactly is refused with an error naming file, line and construct.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhost.errors import TableTempFail
from mailhost.tables.base import UnavailableTable
from mailhost.tables.maps import Maps
from mailhost.tables.pcre import PcreUnsupportedError, parse_rules
from mailhost.tables.registry import TableRegistry, open_table
from tests.tables.record_postfix_pcre import CASES, SOURCES

EXPECTED: dict[str, list[Any]] = json.loads(
    (Path(__file__).parent / "postfix_pcre.json").read_text(encoding="utf-8")
)


@pytest.fixture(scope="module")
def pcre_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pcre")
    for name, text in SOURCES.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def test_every_case_was_recorded() -> None:
    assert sorted(EXPECTED) == sorted(case_id for case_id, _, _ in CASES)


@pytest.mark.postfix
@pytest.mark.parametrize(("case_id", "name", "key"), CASES, ids=[c[0] for c in CASES])
def test_pcre_lookup_matches_postfix(
    mailhost_cli: Any, pcre_dir: Path, case_id: str, name: str, key: str
) -> None:
    result = mailhost_cli("postmap", "-q", key, f"pcre:{pcre_dir}/{name}")
    ours = result.stderr.replace(str(pcre_dir), "{dir}")
    stdout, stderr, status = EXPECTED[case_id]
    if stderr.endswith(": query error\n"):
        # A temporary failure: same texts, but exit 75 (EX_TEMPFAIL) by design.
        assert (result.stdout, ours, result.exit_code) == (stdout, stderr, 75)
        return
    assert [result.stdout, ours, result.exit_code] == [stdout, stderr, status]


#: (pattern line, the construct named in the refusal)
REFUSED = [
    ("/a\\Kb/ x", "\\K"),
    ("/^(a|b(?R))$/ x", "(?R)"),
    ("/^(a)(?1)$/ x", "(?1)"),
    ("/(?&n)/ x", "(?&n)"),
    ("/(?P>n)/ x", "(?P>n)"),
    ("/(?(1)a|b)/ x", "(?(1)"),
    ("/(?|a|b)/ x", "(?|a|b)"),
    ("/\\Ga/ x", "\\G"),
    ("/\\p{L}/ x", "\\p"),
    ("/\\P{L}/ x", "\\P"),
    ("/\\X/ x", "\\X"),
    ("/\\C/ x", "\\C"),
    ("/\\R/ x", "\\R"),
    ("/\\N/ x", "\\N"),
    ("/\\Qa.b\\E/ x", "\\Q"),
    ("/a\\E/ x", "\\E"),
    ("/\\Fa/ x", "\\F"),
    ("/\\ua/ x", "\\u"),
    ("/(?*a)b/ x", "(?*a)"),
    ("/(?<*a)b/ x", "(?<*a)"),
    ("/(?+1)(a)/ x", "(?+1)"),
    ("/\\k<n>(?<n>a)/ x", "\\k<n>"),
    ("/(?P=n)(?<n>a)/ x", "(?P=n)"),
    ("/(*UTF)a/ x", "(*UTF)"),
    ("/\\g{1}(a)/ x", "\\g"),
    ("/\\o{101}/ x", "\\o"),
    ("/\\x{100}/ x", "\\x{100}"),
    ("/(*SKIP)a/ x", "(*SKIP)"),
    ("/(?C1)a/ x", "(?C1)"),
    ("/(?J)(?<n>a)/ x", "(?J)"),
    ("/(?n)(a)/ x", "(?n)"),
    ("/(?^)a/ x", "(?^)"),
    ("/(?xx)a/ x", "(?x)"),
    ("/\\1(a)/ x", "\\1"),
    ("/(a\\1)/ x", "\\1"),
    ("/\\12(a)/ x", "\\12"),
    ("/[[:^alpha:]]/ x", "[:^alpha:]"),
    ("/[\\H]/ x", "\\H"),
    ("/[\\p{L}]/ x", "\\p"),
    ("/(?=a)x?a/ x", "(?=a)x?a... before the first matched character"),
    ("/\\b((?=ab)x?a)/ x", "(?=ab)x?... before the first matched character"),
    ("/(?<=a|bc)x/ x", "(?<=a|bc)x"),
]


@pytest.mark.parametrize(("line", "construct"), REFUSED, ids=[c for _, c in REFUSED])
def test_unmappable_construct_is_refused(tmp_path: Path, line: str, construct: str) -> None:
    path = tmp_path / "refused.pcre"
    path.write_text(f"/^ok$/ ok\n{line}\n", encoding="utf-8")
    with pytest.raises(PcreUnsupportedError) as caught:
        open_table(f"pcre:{path}")
    text = str(caught.value)
    assert text.startswith(f"pcre map {path}, line 2: unsupported PCRE construct ")
    assert construct in text


def test_refusal_is_postmap_fatal(mailhost_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "refused.pcre"
    path.write_text("/a\\Kb/ x\n", encoding="utf-8")
    result = mailhost_cli("postmap", "-q", "ab", f"pcre:{path}")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f'postmap: fatal: pcre map {path}, line 1: unsupported PCRE construct "\\K": '
        "Python's re cannot match it exactly as PCRE2 does\n"
    )


async def test_refused_table_defers_in_daemons(tmp_path: Path) -> None:
    # House rule 2: a table that cannot be opened fails every lookup
    # temporarily in a daemon — never "not found", never a 5xx.
    path = tmp_path / "refused.pcre"
    path.write_text("/a\\Kb/ x\n", encoding="utf-8")
    table = TableRegistry(strict=False).open(f"pcre:{path}")
    assert isinstance(table, UnavailableTable)
    with pytest.raises(TableTempFail):
        await table.lookup("ab")


async def test_partial_keys_skip_pcre_tables(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("/^@example/ pcre-hit\n", encoding="utf-8")
    maps = Maps("virtual_alias_maps", [open_table(f"pcre:{tmp_path}/p")])
    assert await maps.lookup("@example.com") == "pcre-hit"
    assert await maps.lookup("@example.com", partial=True) is None


def _refusal(line: str) -> str | None:
    """Parse one line: None, or the text of the documented refusal.  Any other
    exception escapes and fails the test."""
    logging.disable(logging.WARNING)
    try:
        parse_rules(line + "\n", "prop.pcre")
    except PcreUnsupportedError as exc:
        return str(exc)
    finally:
        logging.disable(logging.NOTSET)
    return None


PCRE_ALPHABET = list("/!ifendIF ()[]{}?*+|\\^$.:-=<>#'aAbBkpxzEsU019$\t")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(PCRE_ALPHABET)))
def test_parser_raises_only_the_documented_error(line: str) -> None:
    refusal = _refusal(line)
    assert refusal is None or "unsupported PCRE construct" in refusal


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parser_accepts_any_text_line(line: str) -> None:
    refusal = _refusal(line)
    assert refusal is None or "unsupported PCRE construct" in refusal
