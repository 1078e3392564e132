"""Record what Postfix 3.7.11's sendmail, pickup and cleanup make of the cases
of scenario.py (run by hand, as root, with Debian's postfix installed):

    .venv/bin/python -m tests.sendmail.record_postfix_sendmail

Starts a throwaway Postfix instance (``postfix -c TMPDIR start``) whose
master.cf runs only pickup, cleanup and trivial-rewrite — no qmgr, so every
message stays in ``incoming`` where ``postcat`` shows what cleanup wrote.
Each case is submitted with ``sendmail`` (``MAIL_CONFIG`` pointing at the
instance), its queue file read with ``postcat -ehb`` and removed.  Queue ids,
dates and Message-Id time stamps are replaced by ``{QID}``, ``{DATE}`` and
``{STAMP}``.  Writes postfix_sendmail.json; the tests never run Postfix.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

from tests.sendmail.scenario import BS_CASES, CASES, ERROR_CASES, MAIN_CF, Case
from tests.support.postfix_lab import PostfixLab, services

HERE = Path(__file__).parent

TEST_INSTANCE_CF = """\
inet_interfaces = loopback-only
master_service_disable = inet
local_transport = error:local disabled
"""

#: No qmgr: every message stays in ``incoming``.
SERVICES = services(base=("pickup", "cleanup", "rewrite", "postlog", "proxymap"))

_DATE = re.compile(
    r"[A-Z][a-z]{2}, [ \d]\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \([A-Z]+\)"
)
_STAMP = re.compile(r"<\d{14}\.")
_LOG = re.compile(r"^\w{3} \d\d \d\d:\d\d:\d\d \S+ postfix/(\w+)\[\d+\]: (.*)$")


def _run(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin.encode(), capture_output=True, env=env, check=False)


def _maildrop_id(match: re.Match[str]) -> str:
    return (
        "queued as {MAILDROP_QID}" if match.group(0).startswith("queued") else "id {MAILDROP_QID};"
    )


def _normal(text: str, qid: str) -> str:
    text = text.replace(qid, "{QID}")
    text = re.sub(r"queued as [0-9A-F]+|id [0-9A-F]{10,};", _maildrop_id, text)
    text = _STAMP.sub("<{STAMP}.", text)
    return _DATE.sub("{DATE}", text)


def _parse_postcat(text: str, qid: str) -> dict[str, object]:
    section = ""
    sender = fullname = ""
    headers: list[str] = []
    body: list[str] = []
    in_body = False
    recipients: list[list[str]] = []
    original = ""
    for line in text.splitlines():
        if line.startswith("*** "):
            section = line.split(" ")[1]
            continue
        if section in ("ENVELOPE", "HEADER"):
            key, _, value = line.partition(": ")
            if key == "sender":
                sender = value
            elif key == "sender_fullname":
                fullname = value
            elif key == "original_recipient":
                original = value
            elif key == "recipient":
                recipients.append([original, value])
                original = ""
        elif section == "MESSAGE":
            if not in_body and line == "":
                in_body = True
                continue
            (body if in_body else headers).append(_normal(line, qid))
    return {
        "sender": sender,
        "fullname": fullname,
        "recipients": recipients,
        "headers": headers,
        "body": body,
    }


def _wait_for_file(directory: Path, timeout: float = 20.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = [p for p in directory.iterdir() if p.is_file()]
        if files:
            time.sleep(0.3)
            return files[0]
        time.sleep(0.1)
    raise RuntimeError(f"nothing arrived in {directory}")


def record_case(case: Case, base: Path, env: dict[str, str]) -> dict[str, object]:
    maillog = base / "maillog"
    log_start = maillog.stat().st_size if maillog.exists() else 0
    result = _run("/usr/sbin/sendmail", *case.args, env={**env, **case.env}, stdin=case.stdin)
    out: dict[str, object] = {
        "exit": result.returncode,
        "stderr": result.stderr.decode(),
    }
    if "-bs" in case.args:
        out["stdout"] = result.stdout.decode()
    if result.returncode != 0:
        return out
    if "stdout" in out:
        out["stdout"] = _normal(str(out["stdout"]), "{QID}")
    path = _wait_for_file(base / "queue" / "incoming")
    qid = path.name
    shown = _run("postcat", "-c", str(base / "etc"), "-ehb", str(path)).stdout.decode()
    out.update(_parse_postcat(shown, qid))
    time.sleep(0.5)
    with maillog.open() as f:
        f.seek(log_start)
        lines = []
        for line in f:
            match = _LOG.match(line.rstrip("\n"))
            if match and match.group(1) in ("pickup", "cleanup", "sendmail", "postdrop"):
                text = match.group(2)
                if "public/qmgr" in text or match.group(1) == "smtpd":
                    continue
                lines.append(f"{match.group(1)}: {_normal(text, qid)}")
    out["maillog"] = lines
    path.unlink()
    return out


def main() -> None:
    lab = PostfixLab("pf-sendmail-", config="etc", owned=("data",))
    base = lab.directory
    lab.write_main_cf(MAIN_CF + TEST_INSTANCE_CF)
    lab.write_master_cf(services=SERVICES)
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "MAIL_CONFIG": str(lab.config), "LOGNAME": "root"}
    lab.env = env
    lab.postfix("check", check=False)
    if lab.postfix("start", check=False) != 0:
        raise SystemExit(lab.log())
    try:
        time.sleep(2)
        cases = CASES + ERROR_CASES + BS_CASES
        recorded = {case.name: record_case(case, base, env) for case in cases}
    finally:
        lab.stop(settle=1)
        shutil.rmtree(base, ignore_errors=True)
    target = HERE / "postfix_sendmail.json"
    target.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
