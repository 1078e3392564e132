"""Record Postfix 3.7.11's queue tools on a real queue (run by hand, as root):

    .venv/bin/python -m tests.queuetools.record_postfix_queue

Starts a throwaway Postfix instance (``postfix -c TMPDIR start``; smtpd on a
loopback port, no pickup so ``sendmail`` mail stays in maildrop) whose
``default_transport`` is smtp to a closed loopback port, so mail defers with
``connect to 127.0.0.1[127.0.0.1]:PORT: Connection refused``; ``retry:``
routes give other deferral reasons, and ``hang.example`` goes to a loopback
listener that accepts and never greets, so that message stays ``active``.
Some messages are put on hold and force-expired with ``postsuper``.  With
Postfix stopped, the arrival stamps (``T`` records) of the queued files are
moved back by fixed amounts (mtime kept), so ``qshape`` has ages in many
buckets.  Then it captures ``postqueue -p``/``-j``, ``qshape`` in several
forms, ``postcat``, ``postsuper`` (stderr, exit status, maillog lines), and the
same listing with ``enable_long_queue_ids = yes``; everything goes to
postfix_queue.json.  The tests never run Postfix; they compare with that file.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.postfix_lab import PostfixLab, free_port, services, wait_for

HERE = Path(__file__).parent

# Ages (minutes) given to messages: bucket midpoints, far from the edges.
AGES = [2, 7, 15, 30, 60, 120, 240, 480, 960, 2000, 5000]

MAIN_CF = """\
compatibility_level = 3.6
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.example.net
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = smtp:[127.0.0.1]:{closed}
transport_maps = inline:{{ {{hang.example = smtp:[127.0.0.1]:{hang}}}, {{busy.example = smtp:[127.0.0.1]:{closed2}}}, {{verylong.example = smtp:[127.0.0.1]:{talker}}} }}
minimal_backoff_time = 3h
maximal_backoff_time = 4h
queue_run_delay = 3h
smtp_helo_timeout = 600s
smtpd_error_sleep_time = 0
"""

LONG_REASON = (
    "The remote side took far too long to answer and this reason text is "
    "longer than seventy-six characters"
)

#: No pickup: ``sendmail`` mail stays in maildrop.
SERVICES = services("flush", "smtp", without="pickup")

# (sender, recipients, body lines): the deferred mix.
MESSAGES: list[tuple[str, list[str], int]] = [
    ("alice@example.com", ["bob@remote.example"], 1),
    ("alice@example.com", ["carol@remote.example", "dave@other.example", "erin@third.example"], 3),
    ("", ["postmaster@remote.example"], 2),
    ("news@lists.example.org", ["x@busy.example", "y@remote.example", "z@busy.example"], 40),
    ("news@lists.example.org", ["w@verylong.example"], 5),
    ("frank@example.com", ['"john doe"@remote.example'], 1),
    ("frank@example.com", [f"u{i}@a{i}.sub.example.net" for i in range(6)], 200),
    ("Mixed.Case@Example.COM", ["Someone@UPPER.Example"], 1),
]


def run(directory: Path, *args: str, stdin: str | None = None) -> dict[str, Any]:
    env = dict(os.environ, MAIL_CONFIG=str(directory), TZ="UTC", LC_ALL="C")
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env, check=False)
    return {"argv": list(args), "stdout": proc.stdout, "stderr": proc.stderr, "rc": proc.returncode}


def send(lab: PostfixLab, sender: str, recipients: list[str], body_lines: int) -> str:
    body = "".join(
        f"line {i} of the body, padded to be a little longer\r\n" for i in range(body_lines)
    )
    message = (
        f"Subject: queue test\r\nMessage-ID: <{time.time_ns()}@client.example.org>\r\n\r\n{body}"
    )
    reply = lab.send(f"<{sender}>", [f"<{rcpt}>" for rcpt in recipients], message)
    assert reply.code == 250, reply
    return reply.text.rsplit(" ", 1)[1]


def queue_files(directory: Path) -> dict[str, Path]:
    found = {}
    for path in (directory / "queue").rglob("*"):
        if path.is_file() and path.parent.name != "pid" and "defer" not in path.parts[-3:-1]:
            found[path.name] = path
    return found


def shift_arrival(path: Path, minutes: int) -> None:
    """Move the ``T`` record (arrival time) back by ``minutes``, same length."""
    data = bytearray(path.read_bytes())
    st = path.stat()
    pos = 0
    while pos < len(data):
        rtype = data[pos]
        pos += 1
        length = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if rtype == ord("T"):
            fields = data[pos : pos + length].decode().split()
            new = str(int(fields[0]) - minutes * 60)
            assert len(new) == len(fields[0])
            data[pos : pos + len(new)] = new.encode()
            break
        pos += length
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


class Talker(socketserver.BaseRequestHandler):
    """Greets with a 421 whose text is longer than a mailq line."""

    def handle(self) -> None:
        self.request.sendall(f"421 4.3.2 {LONG_REASON}\r\n".encode())


def hang_listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # connections complete in the backlog and are never greeted
    return sock


def main() -> None:
    lab = PostfixLab("pfx-queue-")
    directory = lab.directory
    hang = hang_listener()
    talker = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Talker)
    threading.Thread(target=talker.serve_forever, daemon=True).start()
    closed, closed2 = free_port(), free_port()
    lab.write_main_cf(
        MAIN_CF.format(
            dir=directory,
            closed=closed,
            closed2=closed2,
            hang=hang.getsockname()[1],
            talker=talker.server_address[1],
        )
    )
    lab.write_master_cf("", services=SERVICES)
    out: dict[str, Any] = {"closed_port": closed, "long_reason": LONG_REASON}

    def postfix(action: str) -> None:
        lab.postfix(action)
        time.sleep(1.5)

    postfix("start")
    try:
        out["empty"] = {
            "mailq": run(directory, "postqueue", "-p"),
            "json": run(directory, "postqueue", "-j"),
            "qshape": run(directory, "qshape", "-c", str(directory)),
            "hold_all": run(directory, "postsuper", "-h", "ALL"),
        }
        ids = [send(lab, s, r, n) for s, r, n in MESSAGES]
        out["ids"] = ids
        deferred = directory / "queue" / "deferred"
        wait_for(
            lambda: len(list(deferred.rglob("*/*"))) == len(ids),
            "all deferred",
            timeout=60,
            interval=0.2,
        )
        # hold two, force-expire two (one of them held)
        out["postsuper_setup"] = [
            run(directory, "postsuper", "-h", ids[1]),
            run(directory, "postsuper", "-h", ids[5]),
            run(directory, "postsuper", "-e", ids[5]),
            run(directory, "postsuper", "-e", ids[2]),
        ]
        postfix("stop")
        files = queue_files(directory)
        for qid, minutes in zip(ids, AGES, strict=False):
            shift_arrival(files[qid], minutes)
        # a maildrop message (no pickup service runs)
        out["sendmail"] = run(
            directory, "sendmail", "-f", "", "someone@example.org",
            stdin="Subject: maildrop\n\nstays in maildrop\n",
        )  # fmt: skip
        out["down"] = {
            "mailq": run(directory, "postqueue", "-p"),
            "flush": run(directory, "postqueue", "-f"),
        }
        postfix("start")
        active_id = send(lab, "sender@example.com", ["a@remote.example", "b@hang.example"], 2)
        out["active_id"] = active_id

        def active_with_reason() -> bool:
            return any((directory / "queue" / "active").iterdir()) and any(
                (directory / "queue" / "defer").rglob(active_id)
            )

        wait_for(active_with_reason, "active message with a defer log", timeout=60, interval=0.2)
        time.sleep(1)
        before = time.time()
        out["mailq"] = run(directory, "postqueue", "-p")
        out["json"] = run(directory, "postqueue", "-j")
        qshape_args = [
            [],
            ["deferred"],
            ["-s", "deferred"],
            ["hold", "deferred", "active", "incoming"],
            ["-p", "deferred"],
            ["-p", "-m", "2", "deferred"],
            ["-l", "-b", "5", "-t", "10", "deferred"],
            ["-b", "4", "-t", "60", "deferred"],
            ["-w", "100", "-s", "deferred"],
            ["-w", "40", "deferred"],
            ["-b", "1", "deferred"],
            ["hold"],
            ["maildrop"],
        ]
        out["qshape"] = [run(directory, "qshape", "-c", str(directory), *a) for a in qshape_args]
        out["qshape_time"] = [before, time.time()]
        out["postcat"] = [
            run(directory, "postcat", "-q", ids[1]),
            run(directory, "postcat", "-hq", ids[1]),
            run(directory, "postcat", "-bq", ids[1]),
            run(directory, "postcat", "-eq", ids[1]),
            run(directory, "postcat", "-q", "NOSUCHID"),
        ]
        out["postqueue_misc"] = [
            run(directory, "postqueue", "-i", ids[0]),
            run(directory, "postqueue", "-i", "NOSUCHID"),
            run(directory, "postqueue", "-s", "bad site!"),
            run(directory, "postqueue", "-s", "remote.example"),
            run(directory, "postqueue", "-i", "bad/id"),
        ]
        # long queue ids: new mail gets long ids, the listing format changes
        with (directory / "main.cf").open("a") as main_cf:
            main_cf.write("enable_long_queue_ids = yes\n")
        postfix("reload")
        long_id = send(lab, "alice@example.com", ["l@remote.example"], 1)
        wait_for(lambda: any(deferred.rglob(long_id)), "long id deferred", timeout=60, interval=0.2)
        out["long_id"] = long_id
        out["long_mailq"] = run(directory, "postqueue", "-p")
        out["long_json"] = run(directory, "postqueue", "-j")
        out["postsuper"] = [
            run(directory, "postsuper", "-d", "NOPE"),
            run(directory, "postsuper", "-d", "bad/id"),
            run(directory, "postsuper", "-d", "all"),
            run(directory, "postsuper", "-h", ids[0]),
            run(directory, "postsuper", "-h", ids[0]),
            run(directory, "postsuper", "-H", ids[0]),
            run(directory, "postsuper", "-H", ids[0]),
            run(directory, "postsuper", "-r", ids[3]),
            run(directory, "postsuper", "-e", ids[4]),
            run(directory, "postsuper", "-f", ids[1]),
            run(directory, "postsuper", "-h", "-", stdin=f"{ids[6]}\n{ids[7]}\nbad/id\n"),
            run(directory, "postsuper", "-d", ids[6], "-d", ids[7], "hold"),
            run(directory, "postsuper", "-d", ids[0], "hold"),
            run(directory, "postsuper", "-H", "ALL"),
            run(directory, "postsuper", "-h", "ALL", "deferred"),
            run(directory, "postsuper", "-d", "ALL", "hold"),
            run(directory, "postsuper", "-d", "ALL"),
        ]
    finally:
        lab.stop()
        hang.close()
        talker.shutdown()
    out["maillog"] = lab.log()
    (HERE / "postfix_queue.json").write_text(json.dumps(out, indent=1) + "\n")
    print(directory)


if __name__ == "__main__":
    main()
