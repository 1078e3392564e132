"""Record Postfix 3.7.11's non_smtpd_milters with milter_header_checks
(run by hand, as root):

    .venv/bin/python -m tests.milter.record_postfix_local_milter_header_checks

Writes postfix_local_milter_header_checks.json like
record_postfix_local_milter.py, with the table of header_check_cases.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.milter.header_check_cases import LOCAL_HC_CASES, TABLE
from tests.milter.record_postfix_local_milter import record


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        table = Path(directory) / "milter_header_checks"
        table.write_text(TABLE)
        table.parent.chmod(0o755)
        record(
            LOCAL_HC_CASES,
            "postfix_local_milter_header_checks.json",
            f"milter_header_checks = regexp:{table}\n",
        )


if __name__ == "__main__":
    main()
