"""A throwaway Dovecot for the interop tests: start its master on a temp
config, wait until it is ready, stop it with ``doveadm stop`` and remove its
directory.  The master daemonizes and keeps its inherited descriptors, so it
never gets a pipe (the test would wait for EOF forever); its log goes to the
file the config names."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _quiet(*args: str, check: bool) -> None:
    null = subprocess.DEVNULL
    subprocess.run(args, check=check, timeout=30, stdin=null, stdout=null, stderr=null)


@contextmanager
def running(
    dovecot: str, conf: Path, root: Path, ready: Callable[[], bool], log: Callable[[], str]
) -> Iterator[None]:
    """Dovecot on ``conf`` until the block ends; ``ready()`` polls start-up
    (15 s), ``log()`` explains a failure; ``root`` is removed at the end."""
    _quiet(dovecot, "-c", str(conf), check=True)
    try:
        deadline = time.monotonic() + 15
        while not ready():
            if time.monotonic() > deadline:
                pytest.fail("dovecot did not start:\n" + log())
            time.sleep(0.05)
        yield
    finally:
        _quiet("doveadm", "-c", str(conf), "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)
