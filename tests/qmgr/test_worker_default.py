"""``mailhost_worker_processes`` defaults to 0: one ``mailhost serve`` worker
per CPU the process may run on (its affinity mask, mailhost.prefork); an
explicit number is used as given; a negative one is a configuration error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailhost.errors import ConfigError
from mailhost.prefork import available_cpus, worker_processes
from tests.support.maincf import alice_site
from tests.support.net import free_port
from tests.support.server import QMGR_LINE, serve_cli


def test_default_is_one_worker_per_available_cpu() -> None:
    assert worker_processes(0) == len(os.sched_getaffinity(0)) == available_cpus()


def test_explicit_numbers_are_kept() -> None:
    assert [worker_processes(n) for n in (1, 2, 7)] == [1, 2, 7]


def test_negative_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="mailhost_worker_processes = -1"):
        worker_processes(-1)


def test_serve_without_the_parameter_starts_a_worker_per_cpu(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(alice_site(tmp_path))
    server, _ = serve_cli(tmp_path, QMGR_LINE)
    try:
        log = server.log()
    finally:
        assert server.stop() == 0
    cpus = available_cpus()
    if cpus > 1:
        assert f"started {cpus} worker processes" in log
    assert log.count("daemon started") == cpus


@pytest.mark.skipif(shutil.which("taskset") is None, reason="util-linux taskset")
def test_serve_on_one_cpu_is_one_process(tmp_path: Path) -> None:
    """Pinned to one CPU (taskset, a cpuset), the default is the single
    process: no workers, no anvil process."""
    port = free_port()
    (tmp_path / "main.cf").write_text(alice_site(tmp_path))
    (tmp_path / "master.cf").write_text(f"127.0.0.1:{port} inet n - n - - smtpd\n")
    command = ["taskset", "-c", str(min(os.sched_getaffinity(0)))]
    command += [sys.executable, "-m", "mailhost", "serve", "-c", str(tmp_path)]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "daemon started" in line:
            break
    proc.terminate()
    rest, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, "".join(lines) + rest
    assert "worker processes" not in "".join(lines)


def test_negative_worker_count_is_a_fatal_error_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(alice_site(tmp_path) + "mailhost_worker_processes = -2\n")
    (tmp_path / "master.cf").write_text(f"127.0.0.1:{free_port()} inet n - n - - smtpd\n")
    done = subprocess.run(
        [sys.executable, "-m", "mailhost", "serve", "-c", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "mailhost: fatal: mailhost_worker_processes = -2" in done.stderr
    assert "Traceback" not in done.stderr
