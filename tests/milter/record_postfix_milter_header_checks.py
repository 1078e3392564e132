"""Record Postfix 3.7.11 with milter_header_checks (run by hand, as root):

    .venv/bin/python -m tests.milter.record_postfix_milter_header_checks

milter_header_checks is cleanup's parameter, so it is set in main.cf (the
table of header_check_cases.py) and every case's listener shares it.
Writes postfix_milter_header_checks.json like record_postfix_milter.py.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from tests.milter.cases import milter_log_lines, sent_to_milter
from tests.milter.header_check_cases import HC_CASES, TABLE
from tests.milter.peer import ScriptedMilter
from tests.milter.record_postfix_milter import MAIN_CF, option, queue_view
from tests.smtpd.dialogues import run_dialogue
from tests.support.postfix_lab import PostfixLab, services

HERE = Path(__file__).parent


def main() -> None:
    lab = PostfixLab("pfx-milter-hc-")
    table = lab.config / "milter_header_checks"
    table.write_text(TABLE)
    lab.write_main_cf(MAIN_CF + f"milter_header_checks = regexp:{table}\n")
    milters = {name: ScriptedMilter(case.script).start() for name, case in HC_CASES.items()}
    listeners = [option("smtpd_milters", milters[name].endpoint) for name in HC_CASES]
    ports = dict(zip(HC_CASES, lab.write_master_cf(*listeners, services=services()), strict=True))
    recorded = {}
    with lab.running():
        for name, case in HC_CASES.items():
            offset = lab.log_size()
            replies = run_dialogue(ports[name], case.steps)
            lab.wait_log("disconnect from", since=offset, timeout=15)
            time.sleep(0.5)
            text = lab.log(offset)
            entry: dict[str, object] = {
                "replies": replies,
                "log": milter_log_lines(text, "postfix"),
                "sent": sent_to_milter(milters[name].received),
            }
            if case.held:
                found = re.search(r"(\w+): client=", text)
                qid = found.group(1) if found else ""
                shown = lab.tool("postcat", "-c", str(lab.config), "-q", qid)
                entry["queue"] = queue_view(shown.stdout)
            recorded[name] = entry
    for milter in milters.values():
        milter.stop()
    out = HERE / "postfix_milter_header_checks.json"
    out.write_text(json.dumps(recorded, indent=1) + "\n")
    print(lab.log())


if __name__ == "__main__":
    main()
