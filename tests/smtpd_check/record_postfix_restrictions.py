"""Record Postfix 3.7.11's answers to the restriction cases of scenario.py
(run by hand, as root):

    .venv/bin/python -m tests.smtpd_check.record_postfix_restrictions

Starts a throwaway Postfix instance with scenario.MAIN_CF, its tables
(``postmap`` builds the hash: ones) and one loopback smtpd per scenario
listener, plus the fast flush service (for ETRN); replays every case from its
own client address and writes postfix_restrictions.json: the replies of each
step and smtpd's log lines about the restrictions.  The tests never run
Postfix; they compare with that file.

Postfix's EHLO offers DSN and CHUNKING, which mailhost does not implement:
the Postfix side discards those two keywords (smtpd_discard_ehlo_keywords).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.smtpd_check.scenario import (
    CASES,
    HASH_TABLES,
    LISTENERS,
    MAIN_CF,
    listener_args,
    run_dialogue,
    smtpd_log_lines,
    write_tables,
)
from tests.support.postfix_lab import PostfixLab, services

HERE = Path(__file__).parent

#: Only on the Postfix side (see the module docstring).
POSTFIX_ONLY_CF = "smtpd_discard_ehlo_keywords = dsn, chunking\n"


def main() -> None:
    lab = PostfixLab("pfx-restrictions-")
    write_tables(lab.directory)
    lab.write_main_cf(MAIN_CF.format(dir=lab.directory) + POSTFIX_ONLY_CF)
    for name in HASH_TABLES:
        done = lab.tool("postmap", f"hash:{lab.directory / name}")
        assert done.returncode == 0, done.stderr
    names = list(LISTENERS)
    ports = dict(
        zip(
            names,
            lab.write_master_cf(
                *(listener_args(name, lab.directory) for name in names),
                services=services("flush"),
            ),
            strict=True,
        )
    )
    recorded = {}
    with lab.running():
        for name, case in CASES.items():
            offset = lab.log_size()
            replies = run_dialogue(ports[case.listener], case.client, case.steps)
            text = lab.wait_log("disconnect from", since=offset, timeout=15)
            recorded[name] = {"replies": replies, "log": smtpd_log_lines(text, "postfix/smtpd")}
    (HERE / "postfix_restrictions.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(lab.log())


if __name__ == "__main__":
    main()
