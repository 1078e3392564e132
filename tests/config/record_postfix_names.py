"""Record the names of Postfix 3.7.11's main.cf parameters (run by hand):

    .venv/bin/python -m tests.config.record_postfix_names

Writes mailhost/config/postfix_names.py: the built-in names ``postconf -d``
prints with an empty master.cf, and the suffixes postconf adds after the name
of each master.cf transport (``maildrop_destination_recipient_limit``), found
by comparing with Debian's stock master.cf.  ``mailhost serve`` uses them to
tell a parameter Postfix has and mailhost does not implement from a name
nobody knows (mailhost.config.unused).
"""

from __future__ import annotations

import subprocess
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_MASTER_CF = Path(__file__).with_name("debian_master.cf")

HEADER = '''"""The names of Postfix 3.7.11's main.cf parameters (recorded by
tests/config/record_postfix_names.py from ``postconf -d``; do not edit).

``BUILTIN``: every name ``postconf -d`` prints with an empty master.cf.
``SERVICE_SUFFIXES``: what postconf adds after a master.cf service name
(``SERVICE_destination_recipient_limit`` for a transport ``SERVICE``).
"""

from __future__ import annotations


def _words(text: str) -> list[str]:
    return text.split()

'''


def names(master_cf: str) -> set[str]:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "main.cf").write_text("")
        (Path(directory) / "master.cf").write_text(master_cf)
        done = subprocess.run(
            ["postconf", "-c", directory, "-d", "-H"], capture_output=True, text=True, check=True
        )
    return set(done.stdout.split())


def words(items: set[str]) -> str:
    return textwrap.fill(
        " ".join(sorted(items)), 92, initial_indent=" " * 8, subsequent_indent=" " * 8
    )


def main() -> None:
    builtin = names("")
    debian_text = DEBIAN_MASTER_CF.read_text()
    services = {
        line.split()[0]
        for line in debian_text.splitlines()
        if line and not line[0].isspace() and not line.startswith("#")
    }
    suffixes: set[str] = set()
    for name in names(debian_text) - builtin:
        prefix = max((s for s in services if name.startswith(s + "_")), key=len)
        suffixes.add(name[len(prefix) + 1 :])
    text = (
        HEADER
        + '\nBUILTIN = frozenset(\n    _words(\n        """\n'
        + words(builtin)
        + '\n        """\n    )\n)\n\nSERVICE_SUFFIXES = frozenset(\n    _words(\n        """\n'
        + words(suffixes)
        + '\n        """\n    )\n)\n'
    )
    (ROOT / "mailhost" / "config" / "postfix_names.py").write_text(text)


if __name__ == "__main__":
    main()
