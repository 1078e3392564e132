"""Record Postfix 3.7.11's answers to tests/smtpd/dialogues.py (run by hand, as root):

    .venv/bin/python -m tests.smtpd.record_postfix_dialogues

Starts a throwaway Postfix instance (``postfix -c TMPDIR start``) on loopback
ports with the same main.cf settings and master.cf ``-o`` overrides as the
test server (listeners using SASL are left out: stock Postfix needs Cyrus or
Dovecot for AUTH), replays every dialogue and writes postfix_dialogues.json.
The tests never run Postfix; they compare with that file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import trustme

from tests.smtpd.dialogues import CASES, run_dialogue, smtpd_log_lines
from tests.support.server import LISTENERS, free_port

HERE = Path(__file__).parent

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
queue_directory = {dir}/queue
data_directory = {dir}/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 192.0.2.0/24
virtual_mailbox_domains = example.com
virtual_mailbox_maps = inline:{{bob@example.com=x, alice@example.com=y}}
virtual_transport = discard:
smtpd_error_sleep_time = 0
message_size_limit = 100000
smtpd_tls_cert_file = {dir}/cert.pem
smtpd_tls_key_file = {dir}/cert.pem
smtpd_tls_security_level = may
smtpd_discard_ehlo_keywords = etrn, dsn, chunking
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
"""

SERVICES = """\
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
tlsmgr unix - - n 1000? 1 tlsmgr
"""


def main() -> None:
    directory = Path(tempfile.mkdtemp(prefix="pfx-dialogues-"))
    directory.chmod(0o755)
    for sub in ("queue", "data"):
        (directory / sub).mkdir()
        shutil.chown(directory / sub, "postfix")
    ca = trustme.CA()
    ca.issue_cert("mx.example.com").private_key_and_cert_chain_pem.write_to_path(
        str(directory / "cert.pem")
    )
    (directory / "main.cf").write_text(MAIN_CF.format(dir=directory))
    names = {listener for listener, _ in CASES.values()}
    ports = {name: free_port() for name in names}
    lines = [
        f"127.0.0.1:{port} inet n - n - - smtpd {LISTENERS[name]}" for name, port in ports.items()
    ]
    (directory / "master.cf").write_text("\n".join(lines) + "\n" + SERVICES)
    subprocess.run(["postfix", "-c", str(directory), "start"], check=True)
    try:
        time.sleep(2)
        maillog = directory / "maillog"
        recorded = {}
        for name, (listener, steps) in CASES.items():
            offset = maillog.stat().st_size
            replies = run_dialogue(ports[listener], steps)
            deadline = time.monotonic() + 10
            while "disconnect from" not in maillog.read_text()[offset:]:
                assert time.monotonic() < deadline, name
                time.sleep(0.05)
            text = maillog.read_bytes()[offset:].decode(errors="replace")
            recorded[name] = {"replies": replies, "log": smtpd_log_lines(text, "postfix/smtpd")}
    finally:
        subprocess.run(["postfix", "-c", str(directory), "stop"], check=False)
    (HERE / "postfix_dialogues.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print((directory / "maillog").read_text())


if __name__ == "__main__":
    main()
