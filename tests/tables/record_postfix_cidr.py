"""Record the expected answers of postfix_cidr_cases.py from real Postfix 3.7.11.

Run by hand (not part of the test suite) on a machine with Debian's postfix:

    .venv/bin/python tests/tables/record_postfix_cidr.py

writes tests/tables/postfix_cidr.json: for each case, ``postmap -q KEY
cidr:FILE``'s stdout, stderr (the table directory as ``{dir}``) and exit status.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.postfix_lab import PostfixLab
from tests.tables.postfix_cidr_cases import CASES, SOURCES

OUTPUT = Path(__file__).with_name("postfix_cidr.json")


def main() -> None:
    # The tables and postmap's main.cf (compatibility_level as Debian's) in
    # one lab directory; postmap runs there.
    lab = PostfixLab("pfx-cidr-", owned=())
    (lab.config / "main.cf").write_text("compatibility_level = 3.6\n")
    for name, text in SOURCES.items():
        (lab.directory / name).write_bytes(text.encode())
    expected: dict[str, list[object]] = {}
    for case_id, name, key in CASES:
        proc = lab.tool("/usr/sbin/postmap", "-q", key, f"cidr:{lab.directory}/{name}")
        stderr = proc.stderr.replace(str(lab.directory), "{dir}")
        expected[case_id] = [proc.stdout, stderr, proc.returncode]
    shutil.rmtree(lab.directory)
    text = json.dumps(expected, indent=1, ensure_ascii=False, sort_keys=True)
    OUTPUT.write_text(text + "\n", encoding="utf-8")
    print(f"{len(expected)} cases written to {OUTPUT}")


if __name__ == "__main__":
    main()
