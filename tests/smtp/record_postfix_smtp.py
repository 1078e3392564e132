"""Record what a real Postfix 3.7 smtp(8)/lmtp(8) logs for outbound cases
(not part of the suite; re-run to refresh postfix_smtp.json).

Runs itself inside fresh network and mount namespaces (``unshare -mn``, as
root), so the throwaway Postfix, the DNS server (tests/smtp/dnsserver.py on
127.0.0.1:53, made the system resolver by bind-mounting a resolv.conf) and
the smtp-sink peers on 127.0.0.x:25 see nothing but their own loopback.
Messages are injected over SMTP into the instance's smtpd on
127.0.0.1:10025; the delivery lines of its maillog_file are recorded per
recipient, with queue ids, pids and timings replaced by placeholders.

    sudo .venv/bin/python tests/smtp/record_postfix_smtp.py
"""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.postfix_lab import PostfixLab

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "postfix_smtp.json"

#: recipient → what the case exercises (the recorded key).
CASES = {
    "ok@mx.test": "MX, best preference accepts",
    "user@nomx.test": "no MX: A fallback; RCPT hard reject with a custom reply",
    "user@nullmx.test": "null MX (RFC 7505)",
    "user@self.test": "the only MX is this host",
    "user@zz.test": "NXDOMAIN",
    "user@broken.test": "SERVFAIL on the MX query",
    "user@nohost.test": "MX host without an address",
    "user@refused.test": "connection refused",
    "user@soft.test": "RCPT soft reject 451",
    "user@greet.test": "421 greeting",
    "user@data.test": "end of DATA hard reject",
    "user@mail.test": "MAIL FROM hard reject",
    "user@relayed.test": "transport_maps smtp:[127.0.0.10]:2525",
    "user@viamx.test": "transport_maps smtp:relay.test (MX of the nexthop)",
    "user@viaa.test": "transport_maps smtp:[relay.test] (A of the nexthop)",
    "user@lmtpu.test": "lmtp:unix:PATH to smtp-sink -L",
    "user@lmtpi.test": "lmtp:inet:127.0.0.9:24 to smtp-sink -L",
    "user@lmtprej.test": "lmtp:inet: RCPT hard reject",
    "user@two.test": "first MX refuses the connection, second accepts",
    "user@softbackup.test": "first MX 451 at RCPT, second accepts",
    "user@mailsoft.test": "first MX 451 at MAIL, second accepts",
    "user@lost.test": "peer disconnects after RCPT without replying",
    "user@rcpt421.test": "421 and disconnect after RCPT",
    "user@greet5.test": "first MX greets with 5xx (skipped), second accepts",
    "user@greet5only.test": "the only MX greets with 5xx",
}

EXTRA_ZONE = [
    ("refused.test", "MX", "10 r.refused.test."),
    ("r.refused.test", "A", "127.0.0.7"),
    ("soft.test", "MX", "10 s.soft.test."),
    ("s.soft.test", "A", "127.0.0.8"),
    ("greet.test", "MX", "10 g.greet.test."),
    ("g.greet.test", "A", "127.0.0.14"),
    ("data.test", "MX", "10 d.data.test."),
    ("d.data.test", "A", "127.0.0.15"),
    ("mail.test", "MX", "10 m.mail.test."),
    ("m.mail.test", "A", "127.0.0.16"),
    ("two.test", "MX", "10 r.refused.test."),
    ("two.test", "MX", "20 mx1.mx.test."),
    ("softbackup.test", "MX", "10 s.soft.test."),
    ("softbackup.test", "MX", "20 mx1.mx.test."),
    ("mailsoft.test", "MX", "10 ms.mailsoft.test."),
    ("mailsoft.test", "MX", "20 mx1.mx.test."),
    ("ms.mailsoft.test", "A", "127.0.0.19"),
    ("lost.test", "MX", "10 l.lost.test."),
    ("l.lost.test", "A", "127.0.0.18"),
    ("rcpt421.test", "MX", "10 q.rcpt421.test."),
    ("q.rcpt421.test", "A", "127.0.0.20"),
    ("greet5.test", "MX", "10 g5.greet5.test."),
    ("greet5.test", "MX", "20 mx1.mx.test."),
    ("g5.greet5.test", "A", "127.0.0.21"),
    ("greet5only.test", "MX", "10 g5.greet5.test."),
]

#: smtp-sink peers: address:port → extra options.
SINKS = {
    "127.0.0.2:25": [],
    "127.0.0.4:25": [
        "-f",
        "RCPT",
        "-B",
        "550 5.1.1 <user@nomx.test>: Recipient address rejected: User unknown",
    ],
    "127.0.0.8:25": ["-r", "RCPT", "-b", "451 4.3.0 <user@soft.test>: Temporary lookup failure"],
    "127.0.0.14:25": ["-Q", "CONNECT"],
    "127.0.0.15:25": ["-f", ".", "-B", "554 5.7.1 Message rejected: spam"],
    "127.0.0.16:25": ["-f", "MAIL", "-B", "553 5.7.1 Sender address rejected"],
    "127.0.0.10:2525": [],
    "127.0.0.18:25": ["-q", "RCPT"],
    "127.0.0.19:25": ["-r", "MAIL", "-b", "451 4.3.2 Please try again later"],
    "127.0.0.20:25": ["-Q", "RCPT"],
    "127.0.0.21:25": ["-f", "CONNECT", "-B", "554 5.7.1 You are not welcome here"],
    "127.0.0.6:25": [],
    "127.0.0.9:24": ["-L"],
    "127.0.0.17:24": [
        "-L",
        "-f",
        "RCPT",
        "-B",
        "550 5.1.1 <user@lmtprej.test> User doesn't exist: user@lmtprej.test",
    ],
}

MAIN_CF = """\
compatibility_level = 3.6
mail_owner = postfix
myhostname = mx.example.com
mydomain = example.com
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
transport_maps = texthash:{d}/etc/transport
smtp_connect_timeout = 3s
lmtp_connect_timeout = 3s
smtp_dns_support_level = enabled
"""

TRANSPORT = """\
relayed.test smtp:[127.0.0.10]:2525
viamx.test smtp:relay.test
viaa.test smtp:[relay.test]
lmtpu.test lmtp:unix:{d}/lmtp.sock
lmtpi.test lmtp:inet:127.0.0.9:24
lmtprej.test lmtp:inet:127.0.0.17:24
"""


def master_cf() -> str:
    # Debian's master.cf without chroot (so /etc/resolv.conf is the one we
    # mounted) and with the SMTP listener on 127.0.0.1:10025.
    lines = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        fields = line.split()
        if line and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = "127.0.0.1:10025"
            fields[4] = "n"
            lines.append(" ".join(fields))
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def normalize(line: str) -> str:
    text = re.sub(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ ", "", line)
    text = re.sub(r"\[/tmp/pfrec-[^/]+/", "[DIR/", text)
    text = re.sub(r"\[\d+\]:", "[PID]:", text, count=1)
    text = re.sub(r"\b[0-9A-F]{10,12}\b", "QID", text)
    return re.sub(r"delay=[\d.]+, delays=[\d./]+", "delay=D, delays=D", text)


def inside() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.smtp.dnsserver import DnsServer, sample_zone
    from tests.support.postfix_lab import PostfixLab

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    lab = PostfixLab("pfrec-", config="etc", owned=("data",))
    d = lab.directory
    resolv = d / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    lab.write_main_cf(MAIN_CF.format(d=d))
    (lab.config / "master.cf").write_text(master_cf())
    (lab.config / "transport").write_text(TRANSPORT.format(d=d))
    dns = DnsServer(sample_zone(EXTRA_ZONE), port=53).start()
    sinks: list[subprocess.Popen[bytes]] = []
    try:
        run(lab, sinks)
    finally:
        for s in sinks:
            s.terminate()
            s.wait()
        dns.stop()
    log = lab.log()
    recorded: dict[str, dict[str, object]] = {}
    all_lines = log.splitlines()
    for rcpt, what in CASES.items():
        recorded[rcpt] = {
            "case": what,
            "lines": [normalize(x) for x in case_lines(all_lines, rcpt)],
        }
    OUT.write_text(json.dumps(recorded, indent=2) + "\n")
    print(log)


def case_lines(lines: list[str], rcpt: str) -> list[str]:
    """The smtp/lmtp lines of the message to ``rcpt``: those with its queue
    id, and the connection failures its delivery process logged (without a
    queue id) between activating the message and its final result."""
    final = [i for i, x in enumerate(lines) if f"to=<{rcpt}>" in x and "/smtpd[" not in x]
    if not final:
        return []
    m = re.search(r"postfix/(\w+)\[(\d+)\]: ([0-9A-F]+): ", lines[final[0]])
    assert m is not None
    pid, qid = m.group(2), m.group(3)
    start = next(i for i, x in enumerate(lines) if f"{qid}: from=" in x and "qmgr" in x)
    out = []
    for i, x in enumerate(lines):
        agent = "/smtp[" in x or "/lmtp[" in x
        if agent and f"]: {qid}: " in x:
            out.append(x)
        elif agent and f"[{pid}]: " in x and start < i < final[-1] and ": connect to " in x:
            out.append(x)
    return out


def run(lab: PostfixLab, sinks: list[subprocess.Popen[bytes]]) -> None:
    for where, opts in SINKS.items():
        sinks.append(subprocess.Popen(["smtp-sink", "-u", "postfix", *opts, where, "50"]))
    sinks.append(
        subprocess.Popen(
            ["smtp-sink", "-u", "postfix", "-L", f"unix:{lab.directory}/lmtp.sock", "50"]
        )
    )
    with lab.running(after_stop=1):
        with smtplib.SMTP("127.0.0.1", 10025) as client:
            for rcpt in CASES:
                client.sendmail(
                    "sender@example.com", [rcpt], f"Subject: {rcpt}\r\n\r\nbody\r\n".encode()
                )
        time.sleep(15)


if __name__ == "__main__":
    if "--inside" in sys.argv:
        inside()
    else:
        sys.exit(subprocess.call(["unshare", "-mn", sys.executable, __file__, "--inside"]))
