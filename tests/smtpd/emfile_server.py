"""A listener (mailhost.smtpd.acceptor) in a process that runs out of file
descriptors: ``python -m tests.smtpd.emfile_server PORTFILE`` under a low
RLIMIT_NOFILE (prlimit).  The session budget is set far above what the
limit allows, so ``accept`` itself fails with EMFILE; each accepted
connection is held until its client closes it.  The port is written to
PORTFILE; on SIGTERM the number of connections served is printed."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

from mailhost.smtpd.acceptor import Acceptor, listening_socket
from mailhost.smtpd.capacity import Capacity, Slot


async def main(portfile: Path) -> None:
    loop = asyncio.get_running_loop()
    capacity = Capacity(fd_budget=1 << 20)
    service = capacity.service("emfile", 0, "0", local_only=True)
    served = 0

    async def connect(sock: socket.socket, slot: Slot) -> None:
        nonlocal served
        try:
            while await loop.sock_recv(sock, 1024):
                pass
        finally:
            served += 1
            sock.close()
            slot.release()

    (sock,) = listening_socket("127.0.0.1", 0, reuse_port=False)
    acceptor = Acceptor(sock, service, capacity, connect)
    acceptor.start()
    portfile.write_text(str(sock.getsockname()[1]))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    acceptor.close()
    print(f"served {served}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
