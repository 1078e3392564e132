"""Run the real server (mailhost.cli.serve.run_server) with test seams:
``python -m tests.smtpd.launcher CONFIG_DIR [files|store]``.

``files`` (default) queues through fakes.FileQueue; ``store`` through the
production queue (mailhost.queue via mailhost.master), recovery
included.  The recipient policy is always fakes.VirtualPolicy; sender login
lookups use the resolver's key sequence, as in production.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mailhost.cli.serve import run_server
from mailhost.master import Master, StageOverrides
from tests.smtpd.fakes import FileQueue, VirtualPolicy


def stages(kind: str) -> StageOverrides:
    if kind == "store":
        return StageOverrides(recipients=VirtualPolicy)
    return StageOverrides(recipients=VirtualPolicy, queue=FileQueue)


if __name__ == "__main__":
    kind = sys.argv[2] if len(sys.argv) > 2 else "files"
    sys.exit(run_server(Master(Path(sys.argv[1]), stages=stages(kind))))
