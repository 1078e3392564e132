"""Run the real server (mailhost.cli.serve.run_server) with the test seams:
``python -m tests.smtpd.launcher CONFIG_DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

from mailhost.cli.serve import run_server
from mailhost.smtpd.server import Wiring
from tests.smtpd.fakes import FileQueue, VirtualPolicy

if __name__ == "__main__":
    sys.exit(run_server(Path(sys.argv[1]), Wiring(recipients=VirtualPolicy, queue=FileQueue)))
