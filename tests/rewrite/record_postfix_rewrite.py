"""Record what Postfix 3.7.11's cleanup(8) and smtp(8) do to addresses (run by hand, as root):

    .venv/bin/python -m tests.rewrite.record_postfix_rewrite

Starts a throwaway Postfix instance (``postfix -c TMPDIR start``) with
scenario.MAIN_CF and the tables of scenario.TABLES, a loopback smtpd whose
``smtpd_end_of_data_restrictions`` put every message on hold, and sends each
message of scenario.MESSAGES (``remote`` ones pose as 192.0.2.1 with XCLIENT,
so their headers are rewritten in the ``remote`` context).  For each message it
records the end-of-DATA reply and, from ``postcat -q``, the envelope sender,
the (original_recipient, recipient) records and the header section as cleanup
stored it.  Then it releases the hold queue: every message goes by smtp(8),
with scenario.GENERIC as ``smtp_generic_maps``, to an ``smtp-sink -d`` on
loopback, and the MAIL FROM, RCPT TO and header section it received are
recorded too.  Writes postfix_rewrite.json; the tests never run Postfix.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

from tests.rewrite.scenario import GENERIC, MAIN_CF, MESSAGES, TABLES
from tests.support.postfix_lab import PostfixLab, free_port, services, wait_for

HERE = Path(__file__).parent

TEST_INSTANCE_CF = """\
smtpd_error_sleep_time = 0
smtpd_end_of_data_restrictions = check_client_access static:HOLD
smtp_generic_maps = texthash:{dir}/generic
virtual_transport = smtp:[127.0.0.1]:{sink}
default_transport = smtp:[127.0.0.1]:{sink}
relay_transport = smtp:[127.0.0.1]:{sink}
local_transport = smtp:[127.0.0.1]:{sink}
smtp_tls_security_level = none
"""


def postcat(directory: Path, qid: str) -> dict[str, object]:
    out = subprocess.run(
        ["postcat", "-c", str(directory), "-q", qid], check=True, capture_output=True, text=True
    ).stdout
    sender = ""
    context = ""
    records: list[list[str]] = []
    original = None
    headers: list[str] = []
    section = ""
    for line in out.splitlines():
        if line.startswith("*** "):
            section = line.split()[1]
            continue
        if section == "ENVELOPE":
            if line.startswith("named_attribute: rewrite_context="):
                context = line.split("=", 1)[1]
            elif line.startswith("sender: "):
                sender = line[len("sender: ") :]
            elif line.startswith("original_recipient: "):
                original = line[len("original_recipient: ") :]
            elif line.startswith("recipient: "):
                final = line[len("recipient: ") :]
                records.append([original or final, final])
                original = None
        elif section == "MESSAGE":
            if not line:
                section = "BODY"
            elif not line.startswith("Received:") and not line[:1].isspace():
                headers.append(line)
            elif line[:1].isspace() and headers and not headers[-1].startswith("Received:"):
                headers[-1] += "\n" + line
    return {"context": context, "sender": sender, "recipients": records, "headers": headers}


def sink_file(path: Path) -> dict[str, object]:
    """What smtp-sink -d wrote: X-Mail-Args / X-Rcpt-Args lines, then the message."""
    text = path.read_text()
    mail = re.search(r"^X-Mail-Args: <([^>]*)>", text, re.M)
    rcpts = re.findall(r"^X-Rcpt-Args: <([^>]*)>", text, re.M)
    message = text.split("\n\n", 1)[0].splitlines()
    headers: list[str] = []
    for line in message:
        if line.startswith(("X-Client-", "X-Helo-", "X-Mail-", "X-Rcpt-", "Received:")):
            headers.append("\0")  # skipped, and so are its continuation lines
        elif line[:1].isspace() and headers:
            headers[-1] += "\n" + line
        else:
            headers.append(line)
    return {
        "sender": mail.group(1) if mail else None,
        "recipients": sorted(rcpts),
        "headers": [h for h in headers if not h.startswith("\0")],
    }


def send(lab: PostfixLab, ports: list[int], name: str, case: dict[str, object]) -> str:
    headers = "\r\n".join(case["headers"])  # type: ignore[arg-type]
    reply = lab.send(
        f"<{case['sender']}>",
        [f"<{rcpt}>" for rcpt in case["recipients"]],  # type: ignore[attr-defined]
        f"{headers}\r\nX-Case: {name}\r\n\r\nbody\r\n",
        port=ports[1] if case.get("remote") else ports[0],
    )
    return str(reply)


def main() -> None:
    lab = PostfixLab("pfx-rewrite-")
    directory = lab.directory
    sinkdir = directory / "sink"
    sinkdir.mkdir()
    shutil.chown(sinkdir, "postfix")
    for name, lines in TABLES.items():
        (directory / name).write_text("".join(f"{line}\n" for line in lines))
    (directory / "generic").write_text("".join(f"{line}\n" for line in GENERIC))
    sink = free_port()
    lab.write_main_cf(
        MAIN_CF.format(dir=directory) + TEST_INSTANCE_CF.format(dir=directory, sink=sink)
    )
    ports = lab.write_master_cf("", "-o local_header_rewrite_clients=", services=services("smtp"))
    sink_proc = subprocess.Popen(
        ["smtp-sink", "-u", "postfix", "-d", f"{sinkdir}/%M.", f"127.0.0.1:{sink}", "10"]
    )
    recorded: dict[str, dict[str, object]] = {}
    try:
        with lab.running():
            qids: dict[str, str] = {}
            for name, case in MESSAGES.items():
                reply = send(lab, ports, name, case)
                recorded[name] = {"end_of_data": reply}
                match = re.search(r"queued as (\w+)", reply)
                if match:
                    qids[name] = match.group(1)
            time.sleep(1)
            for name, qid in qids.items():
                recorded[name]["queued"] = postcat(directory, qid)
            subprocess.run(["postsuper", "-c", str(directory), "-H", "ALL"], check=True)
            subprocess.run(["postqueue", "-c", str(directory), "-f"], check=True)
            try:
                wait_for(lambda: len(list(sinkdir.iterdir())) >= len(qids), "sent", interval=0.2)
            except AssertionError:
                pass  # what did arrive is recorded
            time.sleep(1)
            for path in sinkdir.iterdir():
                sent = sink_file(path)
                case_line = [h for h in sent["headers"] if h.startswith("X-Case: ")]  # type: ignore[attr-defined]
                name = case_line[0][len("X-Case: ") :]
                recorded[name].setdefault("sent", []).append(sent)  # type: ignore[attr-defined]
            warnings = [
                line.split(": ", 1)[1]
                for line in lab.log().splitlines()
                if "warning:" in line and "cleanup" in line
            ]
    finally:
        sink_proc.terminate()
        sink_proc.wait()
    qid_names = {qid: name for name, qid in qids.items()}
    for line in warnings:
        found = re.search(r"warning: (\w+): (.*)", line)
        if found and found.group(1) in qid_names:
            recorded[qid_names[found.group(1)]].setdefault("warnings", []).append(  # type: ignore[attr-defined]
                found.group(2)
            )
    (HERE / "postfix_rewrite.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(lab.log())


if __name__ == "__main__":
    main()
