"""``unix:`` and ``nis:`` tables answer as Postfix 3.7.11's postmap did on this
kind of machine (Debian 12, no NIS domain)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize(
    ("key", "table", "stdout", "stderr", "status"),
    [
        ("root", "unix:passwd.byname", "root:x:0:0:root:/root:/bin/bash\n", "", 0),
        ("ROOT", "unix:passwd.byname", "root:x:0:0:root:/root:/bin/bash\n", "", 0),
        ("no-such-user-here", "unix:passwd.byname", "", "", 1),
        ("root", "unix:group.byname", "root:x:0:\n", "", 0),
        ("root", "unix:foo", "", "postmap: fatal: unknown table: unix:foo\n", 1),
        (
            "root",
            "nis:mail.aliases",
            "",
            "postmap: warning: dict_nis_init: NIS domain name not set - NIS lookups disabled\n",
            1,
        ),
    ],
)
def test_unix_and_nis_tables_match_postfix(
    mailhost_cli: Any, key: str, table: str, stdout: str, stderr: str, status: int
) -> None:
    result = mailhost_cli("postmap", "-q", key, table)
    assert (result.stdout, result.stderr, result.exit_code) == (stdout, stderr, status)
