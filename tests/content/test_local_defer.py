"""A REJECT with a 4.x.x code, or a check table that fails, does not bounce
local mail: the maildrop file stays for pickup's next scan (Postfix's
cleanup answers pickup with a temporary failure)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.content import tables
from tests.content.site import start_site

SENDMAIL = Path(sys.executable).with_name("mailhost-sendmail")


def test_temporary_reject_leaves_the_maildrop_file(tmp_path: Path) -> None:
    if not SENDMAIL.exists():
        pytest.skip("mailhost-sendmail is not installed in this virtualenv (pip install -e .)")
    server, _ = start_site(tmp_path)
    try:
        done = subprocess.run(
            [str(SENDMAIL), "-f", "s@client.test", "alice@example.com"],
            input=tables.message("reject temporary").replace("\r\n", "\n").encode(),
            env={**os.environ, "MAILHOST_CONFIG": str(tmp_path)},
            capture_output=True,
            check=False,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        log = server.wait_log("; will retry", timeout=20)
        (dropped,) = (tmp_path / "queue" / "maildrop").iterdir()
        # Stop the retries.
        dropped.unlink()
    finally:
        assert server.stop() == 0
    assert (
        "reject: header Subject: reject temporary from local; from=<s@client.test> "
        "to=<alice@example.com>: 4.7.2 Try later"
    ) in log
    assert "mailhost/cleanup[" in log
    assert f"warning: {dropped.name}: 451 4.7.2 Try later; will retry" in log
    assert not list((tmp_path / "queue").glob("incoming/*"))
    assert not list((tmp_path / "vmail").glob("*/*/new/*"))
