"""What ``mailhost serve`` says once at start about a Postfix configuration
directory: master.cf services it does not run, main.cf and master.cf
parameters nobody uses, Postfix parameters it does not implement."""

from __future__ import annotations

import signal
from pathlib import Path

import trustme

from tests.support.server import ServerProcess, free_port, write_config


def test_serve_names_what_it_will_not_do_once(tmp_path: Path) -> None:
    ca = trustme.CA()
    write_config(tmp_path, ca, {}, "foo_bar = 1\nqmqpd_timeout = 10s\n")
    port = free_port()
    (tmp_path / "master.cf").write_text(
        f"127.0.0.1:{port} inet n - n - - smtpd -o bogus_override=1\n"
        "cleanup unix n - y - 0 cleanup\n"
        "maildrop unix - n n - - pipe\n"
        "  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}\n"
    )
    server = ServerProcess(tmp_path, {"mx": port}, ca, tmp_path / "maillog")
    try:
        server.start()
        log = server.log()
    finally:
        server.stop(signal.SIGKILL)
    warned = [line.split("]: ", 1)[1] for line in log.splitlines() if ": warning: " in line]
    assert [w for w in warned if "NIS" not in w] == [
        f"warning: {tmp_path}/master.cf: line 3: service maildrop/unix (command pipe) "
        "is not run by mailhost; ignored",
        f"warning: {tmp_path}/main.cf: unused parameter: foo_bar=1",
        f"warning: {tmp_path}/main.cf: parameter not implemented by mailhost: qmqpd_timeout",
        f"warning: {tmp_path}/master.cf: unused parameter: bogus_override=1",
    ]
    assert "mailhost/master[" in next(x for x in log.splitlines() if "foo_bar" in x)
