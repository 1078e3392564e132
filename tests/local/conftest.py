"""A world-searchable directory per test: with root-owned aliases, local(8)
runs files and commands as ``default_privs`` (nobody), who cannot enter
pytest's own 0700 temporary directories."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def site_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="mailhost-local-"))
    directory.chmod(0o777)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
