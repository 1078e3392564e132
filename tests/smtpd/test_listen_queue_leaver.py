"""A client that gives up while it waits in the listen queue is accepted
already gone: its session ends (``lost connection after CONNECT``) and gives
its slot back, on either event loop.  Under uvloop the end of stream used to
arrive while the client's name was still being looked up, the cancellation
skipped the session's clean-up, and with maxproc 1 the service never
accepted again."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import trustme

from tests.support.server import ServerProcess, free_port, write_config


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_client_gone_before_accept_frees_its_slot(
    tmp_path: Path, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILHOST_EVENT_LOOP", loop)
    ca = trustme.CA()
    write_config(tmp_path, ca, {})
    port = free_port()
    # maxproc 1: the second client waits in the listen queue.
    (tmp_path / "master.cf").write_text(
        f"127.0.0.1:{port} inet n - n - 1 smtpd -o smtpd_client_connection_count_limit=0\n"
    )
    server = ServerProcess(tmp_path, {"mx": port}, ca, tmp_path / "maillog")
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as first:
            assert first.recv(512).startswith(b"220 ")
            leaver = socket.create_connection(("127.0.0.1", port), timeout=10)
            time.sleep(0.2)
            leaver.close()
            first.sendall(b"QUIT\r\n")
            assert first.recv(512).startswith(b"221 ")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as third:
            assert third.recv(512).startswith(b"220 ")
            third.sendall(b"QUIT\r\n")
        log = server.wait_log("lost connection after CONNECT from localhost[127.0.0.1]")
    finally:
        assert server.stop() == 0
    assert "Traceback" not in log
    assert log.count("connect from localhost[127.0.0.1]") >= 3
