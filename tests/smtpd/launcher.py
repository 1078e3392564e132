"""Run the real server (mailhost.cli.serve.run_server) with test seams:
``python -m tests.smtpd.launcher CONFIG_DIR [files|store]``.

``files`` (default) queues through fakes.FileQueue; ``store`` through the
production queue (mailhost.queue via mailhost.smtpd.wiring), recovery
included.  The recipient policy is always fakes.VirtualPolicy; sender login
lookups use the resolver's key sequence, as in production.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mailhost.cli.serve import run_server
from mailhost.smtpd.server import Wiring
from mailhost.smtpd.wiring import address_search, recover_queue, store_sink
from tests.smtpd.fakes import FileQueue, VirtualPolicy


def wiring(kind: str) -> Wiring:
    if kind == "store":
        return Wiring(
            recipients=VirtualPolicy,
            queue=store_sink,
            address_search=address_search,
            startup=recover_queue,
        )
    return Wiring(recipients=VirtualPolicy, queue=FileQueue, address_search=address_search)


if __name__ == "__main__":
    kind = sys.argv[2] if len(sys.argv) > 2 else "files"
    sys.exit(run_server(Path(sys.argv[1]), wiring(kind)))
