"""Record what real Postfix 3.7.11 prints for ``fail:`` tables and for a
``hash:`` index older than its source (postfix_fail_hash.json).

Run by hand (not part of the test suite) on a machine with Debian's postfix:

    .venv/bin/python tests/tables/record_postfix_fail_hash.py > tests/tables/postfix_fail_hash.json

Each case is run in a fresh directory holding ``src`` (a postmap source) and
``aliases`` (an aliases(5) file), both indexed by Postfix's postmap/postalias.
``times`` says how the index and source modification times are set before
the command: ``fresh`` leaves them as built; ``stale`` puts the index an hour
and the source ten minutes in the past (Postfix warns only when the source is
newer than the index *and* more than 100 seconds old, dict_db.c); ``recent``
puts the index an hour in the past and leaves the source just written.  The
JSON holds, per case: the command line, stdin, the times, and Postfix's
stdout, stderr and exit status.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.postfix_lab import PostfixLab

SOURCES = {"src": "a b\nkey Value With Case\n", "aliases": "root: admin\npostmaster: root\n"}

#: case id -> (argv, stdin, times)
CASES: dict[str, tuple[list[str], str | None, str]] = {
    "fail-query": (["postmap", "-q", "foo", "fail:bar"], None, "fresh"),
    "fail-query-empty-key": (["postmap", "-q", "", "fail:bar"], None, "fresh"),
    "fail-query-stdin": (["postmap", "-q", "-", "fail:bar"], "a\nb\n", "fresh"),
    "fail-query-first-of-two": (["postmap", "-q", "a", "fail:bar", "hash:src"], None, "fresh"),
    "fail-query-after-miss": (["postmap", "-q", "nope", "hash:src", "fail:bar"], None, "fresh"),
    "fail-query-after-hit": (["postmap", "-q", "a", "hash:src", "fail:bar"], None, "fresh"),
    "fail-dump": (["postmap", "-s", "fail:bar"], None, "fresh"),
    "fail-no-name": (["postmap", "-q", "foo", "fail:"], None, "fresh"),
    "fail-postalias-query": (["postalias", "-q", "foo", "fail:bar"], None, "fresh"),
    "hash-stale-query": (["postmap", "-q", "a", "hash:src"], None, "stale"),
    "hash-stale-query-miss": (["postmap", "-q", "nope", "hash:src"], None, "stale"),
    "hash-stale-source-recent": (["postmap", "-q", "a", "hash:src"], None, "recent"),
    "hash-stale-postalias-query": (["postalias", "-q", "root", "hash:aliases"], None, "stale"),
}


def set_times(directory: Path, times: str) -> None:
    """Index and source modification times for ``times`` (module docstring)."""
    now = time.time()
    for source, index in (("src", "src.db"), ("aliases", "aliases.db")):
        if times in ("stale", "recent"):
            os.utime(directory / index, (now - 3600, now - 3600))
        if times == "stale":
            os.utime(directory / source, (now - 600, now - 600))


def record(case: tuple[list[str], str | None, str]) -> dict[str, object]:
    argv, stdin, times = case
    lab = PostfixLab("pfx-failhash-", owned=())
    (lab.config / "main.cf").write_text("compatibility_level = 3.6\n")
    for name, text in SOURCES.items():
        (lab.directory / name).write_text(text)
    for tool, name in (("postmap", "src"), ("postalias", "aliases")):
        built = lab.tool(f"/usr/sbin/{tool}", name)
        assert built.returncode == 0, built.stderr
    set_times(lab.directory, times)
    proc = lab.tool(f"/usr/sbin/{argv[0]}", *argv[1:], stdin=stdin)
    shutil.rmtree(lab.directory)
    return {
        "argv": argv,
        "stdin": stdin,
        "times": times,
        "stdout": proc.stdout,
        "stderr": proc.stderr.replace(str(lab.directory), "{dir}"),
        "status": proc.returncode,
    }


def main() -> None:
    expected = {case_id: record(case) for case_id, case in CASES.items()}
    json.dump(expected, sys.stdout, indent=1, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
