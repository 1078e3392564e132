"""Acceptance: ``mailhost postconf -c examples/postfix -n`` prints what Postfix
3.7.11's ``postconf -c examples/postfix -n`` printed on the same file
(recorded in postfix_n_examples_postfix.txt, ``{dir}`` = the config directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_postconf_n_on_debian_main_cf_matches_postfix(mailhost_cli: Any) -> None:
    directory = ROOT / "examples" / "postfix"
    expected = (Path(__file__).parent / "postfix_n_examples_postfix.txt").read_text()
    result = mailhost_cli("postconf", "-c", str(directory), "-n")
    assert result.exit_code == 0
    assert result.stdout == expected.replace("{dir}", str(directory))
    assert result.stderr == ""
