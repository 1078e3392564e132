"""One real server process per test module, listeners declared in master.cf
(tests/support/server.py has the process and its configuration)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme

from tests.support.server import LISTENERS, ServerProcess, free_port, write_config


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("smtpd")
    ca = trustme.CA()
    ports = {name: free_port() for name in LISTENERS}
    write_config(directory, ca, ports)
    proc = ServerProcess(directory, ports, ca, directory / "maillog")
    proc.start()
    yield proc
    if proc.proc is not None:
        proc.stop()
