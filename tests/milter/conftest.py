"""Real milter peers, started once per test session on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.milter import opendkim, rspamd


@pytest.fixture(scope="session")
def dkim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[opendkim.OpenDkim]:
    with opendkim.running(tmp_path_factory.mktemp("opendkim")) as peer:
        yield peer


@pytest.fixture(scope="session")
def rspamd_milter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with rspamd.running(tmp_path_factory.mktemp("rspamd")) as endpoint:
        yield endpoint
