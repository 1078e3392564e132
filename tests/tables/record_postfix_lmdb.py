"""Record the expected answers of postfix_lmdb_cases.py from real Postfix 3.7.11.

Run by hand (not part of the test suite) as root on a machine with Debian's
postfix and postfix-lmdb:

    .venv/bin/python tests/tables/record_postfix_lmdb.py > tests/tables/postfix_lmdb.json

It builds the indexes with Postfix's ``postmap lmdb:NAME``, queries them with
``postmap``, and copies the indexes it queried into ``tests/tables/data/lmdb/``
(the suite reads those files; commit them with the JSON).  On stderr it shows
the raw key/value bytes Postfix stored, the evidence for the format notes in
``mailhost/tables/lmdb.py``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import lmdb

from tests.support.postfix_lab import PostfixLab
from tests.tables.postfix_lmdb_cases import CASES, INDEXES, SOURCE, make_broken, make_stale

DATA = Path(__file__).parent / "data" / "lmdb"


def show_bytes(path: Path) -> None:
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, max_dbs=0)
    with env.begin() as txn:
        sys.stderr.write(f"{path.name}:\n")
        for key, value in txn.cursor():
            sys.stderr.write(f"  {key!r} -> {value!r}\n")
    env.close()


def main() -> None:
    lab = PostfixLab("pfx-lmdb-", owned=())
    directory = lab.directory
    (lab.config / "main.cf").write_text("compatibility_level = 3.6\n")
    for name, options in INDEXES.items():
        (directory / name).write_text(SOURCE, encoding="utf-8")
        built = lab.tool("/usr/sbin/postmap", *options, f"lmdb:{directory}/{name}")
        assert built.returncode == 0, built.stderr
        sys.stderr.write(built.stderr.replace(str(directory), "{dir}"))
        (directory / name).unlink()  # the suite has no sources (no stale warnings)
        show_bytes(directory / f"{name}.lmdb")
    make_stale(directory)
    make_broken(directory)
    expected: dict[str, list[object]] = {}
    for case_id, args in CASES:
        proc = lab.tool("/usr/sbin/postmap", *(a.format(dir=directory) for a in args))
        err = proc.stderr.replace(str(directory), "{dir}")
        expected[case_id] = [proc.stdout, err, proc.returncode]
    DATA.mkdir(parents=True, exist_ok=True)
    for name in INDEXES:
        shutil.copyfile(directory / f"{name}.lmdb", DATA / f"{name}.lmdb")
    left = sorted(p.name for p in directory.iterdir())
    sys.stderr.write(f"files left in the lab directory: {left}\n")
    json.dump(expected, sys.stdout, indent=1, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
