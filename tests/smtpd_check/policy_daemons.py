"""Real policy daemons from Debian for the check_policy_service tests:

* :func:`postgrey` — Debian's ``postgrey`` on a loopback port with its
  database in a temporary directory, a 1 second greylisting delay and empty
  whitelists (so loopback clients are greylisted too);
* :class:`SpawnBridge` — what Postfix's spawn(8) does for
  ``policyd-spf`` (postfix-policyd-spf-python): a loopback listener that
  runs one program per connection with the connection on its standard
  input and output;
* :func:`policyd_spf_argv` — ``policyd-spf`` with its own configuration,
  its DNS lookups sent to a loopback DNS server on any port (pyspf uses
  pydns, which reads only /etc/resolv.conf and port 53 by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.support.net import free_port

#: The interpreter Debian's policyd-spf runs with (it imports spf_engine).
SYSTEM_PYTHON = "/usr/bin/python3"


def have(program: str) -> bool:
    return shutil.which(program) is not None or Path(program).exists()


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")


@contextlib.contextmanager
def postgrey(directory: Path, delay: int = 1) -> Iterator[int]:
    """postgrey listening on a free loopback port (yielded) until the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "whitelist_clients").write_text("")
    (directory / "whitelist_recipients").write_text("")
    port = free_port()
    if os.geteuid() == 0:
        user, group = "postgrey", "postgrey"
        shutil.chown(directory, user, group)
    else:
        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
    argv = [
        "postgrey", f"--inet=127.0.0.1:{port}", f"--delay={delay}", f"--dbdir={directory}",
        f"--pidfile={directory}/postgrey.pid", f"--user={user}", f"--group={group}",
        f"--whitelist-clients={directory}/whitelist_clients",
        f"--whitelist-recipients={directory}/whitelist_recipients",
    ]  # fmt: skip
    log = (directory / "postgrey.log").open("wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        _wait_port(port, proc, "postgrey")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


SPF_CONF = """\
debugLevel = 1
TestOnly = 1
HELO_reject = Fail
Mail_From_reject = Fail
PermError_reject = False
TempError_Defer = False
skip_addresses = 127.0.0.0/8,::1
"""

_SPF_WRAPPER = """\
import sys
import DNS
import spf
DNS.defaults["server"] = ["127.0.0.1"]
DNS.defaults["port"] = {port}
from spf_engine.policyd_spf import main
sys.argv[1:] = ["{conf}"]
sys.exit(main())
"""


def policyd_spf_argv(directory: Path, dns_port: int) -> list[str]:
    """The command line of policyd-spf with its configuration in ``directory``
    (a script there, so Postfix's spawn(8) can run the same command)."""
    conf = directory / "policyd-spf.conf"
    conf.write_text(SPF_CONF)
    script = directory / "policyd-spf.py"
    script.write_text(_SPF_WRAPPER.format(port=dns_port, conf=conf))
    for path in (conf, script):
        path.chmod(0o644)
    return [SYSTEM_PYTHON, str(script)]


class SpawnBridge:
    """A loopback listener running ``argv`` for each connection (spawn(8))."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.spawned = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> SpawnBridge:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening; the programs still running end when their clients close."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.spawned += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        async def inbound() -> None:
            while data := await reader.read(4096):
                stdin.write(data)
                await stdin.drain()
            stdin.close()

        async def outbound() -> None:
            while data := await stdout.read(4096):
                writer.write(data)
                await writer.drain()
            writer.close()

        try:
            await asyncio.gather(inbound(), outbound())
        except ConnectionError:
            pass
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
