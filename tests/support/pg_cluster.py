"""A throwaway PostgreSQL primary with streaming replicas on loopback ports.

The shared-state shape of a mailhost cluster (docs/design.md: "PostgreSQL
primary + replicas") made real for the tests: ``initdb`` for the primary,
``pg_basebackup -R`` for each replica (the ``-R`` writes ``standby.signal`` and
``primary_conninfo``, PostgreSQL 15 "pg_basebackup" manual), all under one
temporary directory, listening on spare 127.0.0.1 ports with their UNIX
sockets in that directory, trust authentication for loopback only.  Nothing
touches the shared server on 5432.

Everything runs as the ``postgres`` user when the tests run as root (initdb
refuses root), as the current user otherwise.  ``fsync = off``: the cluster
lives for one test session, durability is not what it is for.

Use it through the session fixture::

    from tests.support.pg_cluster import pg_cluster  # noqa: F401  (in a conftest.py)

    def test_x(pg_cluster: PgCluster) -> None:
        pg_cluster.reset()                      # primary up, replicas following it
        pg_cluster.primary.execute("CREATE TABLE t (k text)")
        pg_cluster.wait_caught_up()
        pg_cluster.primary.stop()               # or .kill(): no shutdown checkpoint
        new = pg_cluster.promote(pg_cluster.replicas[0])

or, outside pytest, ``with PgCluster.start(replicas=2) as cluster: ...``.
Tests that change the topology (stop, kill, promote) call :meth:`PgCluster.reset`
first, so each starts from "one primary, every replica streaming from it".
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import free_port

PG_BIN = Path(os.environ.get("MAILHOST_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: Where the clusters live: memory (tmpfs) when the machine has it, so that
#: initdb and the replica copies cost no disk writes.
TMP_ROOT = next((p for p in ("/dev/shm",) if os.access(p, os.W_OK)), None)
REQUIRE = (
    os.environ.get("CI", "").lower() == "true"
    or os.environ.get("MAILHOST_REQUIRE_DATABASES") == "1"
)

#: Settings for every node: loopback only, small, quick to start and stop.
#: ``wal_sender_timeout``/``wal_receiver_timeout`` are short so a replica whose
#: primary vanished notices within seconds.
_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
fsync = off
cluster_name = '{name}'
full_page_writes = off
shared_buffers = 16MB
max_wal_senders = 10
wal_level = replica
hot_standby = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 200ms
wal_sender_timeout = 5s
wal_receiver_timeout = 5s
logging_collector = off
log_min_messages = warning
dynamic_shared_memory_type = mmap
"""

#: Loopback-only trust: local sockets, 127.0.0.1 and ::1, normal and replication.
_HBA = """
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
host    all          all   ::1/128       trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
host    replication  all   ::1/128       trust
"""


class PgClusterError(RuntimeError):
    """A PostgreSQL command of the fixture failed (its output is in the text)."""


def _owner() -> str | None:
    """The user PostgreSQL runs as: ``postgres`` when we are root."""
    return "postgres" if os.geteuid() == 0 else None


def _run(args: Sequence[str | Path], *, timeout: float = 60.0) -> str:
    cmd = [str(a) for a in args]
    proc = subprocess.run(
        cmd,
        user=_owner(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",  # the postgres user may not be able to enter our working directory
        check=False,
    )
    if proc.returncode != 0:
        raise PgClusterError(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class PgNode:
    """One PostgreSQL server of the cluster (``name`` is for messages only)."""

    name: str
    port: int
    datadir: Path
    socket_dir: Path
    host: str = "127.0.0.1"
    dbname: str = "postgres"
    user: str = "postgres"
    _stopped: bool = field(default=True, repr=False)

    # -- addresses --------------------------------------------------------------

    @property
    def hosts_entry(self) -> str:
        """This node as a pgsql_table(5) ``hosts`` entry."""
        return f"inet:{self.host}:{self.port}"

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, dbname: str | None = None, *, driver: str = "postgresql") -> str:
        """A libpq/SQLAlchemy URL (``driver="postgresql+psycopg"`` for SQLAlchemy)."""
        return f"{driver}://{self.user}@{self.host}:{self.port}/{dbname or self.dbname}"

    @property
    def logfile(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.log"

    # -- life cycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        try:
            _run([PG_BIN / "pg_ctl", "start", "-w", "-t", "30", "-D", self.datadir,
                  "-l", self.logfile])  # fmt: skip
        except PgClusterError as exc:
            with contextlib.suppress(OSError):
                tail = self.logfile.read_text(errors="replace").splitlines()[-8:]
                raise PgClusterError(f"{self.name}: {exc}: " + " | ".join(tail)) from None
            raise
        self._stopped = False

    def stop(self) -> None:
        """A clean ("fast") shutdown: sessions are cut, a checkpoint is written."""
        if self.running:
            _run([PG_BIN / "pg_ctl", "stop", "-w", "-t", "30", "-m", "fast", "-D", self.datadir])
        self._stopped = True

    def kill(self) -> None:
        """A crash: SIGKILL the postmaster and its processes (no checkpoint,
        sessions see the socket die).  The next :meth:`start` runs recovery."""
        pids = self._pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        # A dead postmaster's lock files would stop the next start (a zombie
        # postmaster, not yet reaped by init, still "owns" them).
        (self.datadir / "postmaster.pid").unlink(missing_ok=True)
        (self.socket_dir / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
        (self.socket_dir / f".s.PGSQL.{self.port}").unlink(missing_ok=True)
        self._stopped = True

    def _pids(self) -> list[int]:
        """The postmaster and every process whose parent it is."""
        try:
            postmaster = int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == postmaster:
                    children.append(int(entry.name))
        return [postmaster, *children]

    @property
    def running(self) -> bool:
        pids = self._pids()
        return bool(pids) and _alive(pids[0])

    def promote(self) -> None:
        """End recovery on this replica (``pg_ctl promote -w``): it becomes writable."""
        _run([PG_BIN / "pg_ctl", "promote", "-w", "-t", "30", "-D", self.datadir])

    # -- SQL --------------------------------------------------------------------

    def connect(self, dbname: str | None = None, **kwargs: Any) -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname=dbname or self.dbname,
            autocommit=True, connect_timeout=5, **kwargs,
        )  # fmt: skip

    def execute(
        self, sql: str, params: Sequence[object] | None = None, *, dbname: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement (autocommit) and return its rows, if any."""
        with self.connect(dbname) as conn:
            cur = conn.execute(sql, params)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []

    @property
    def in_recovery(self) -> bool:
        """True on a replica (hot standby), False on a primary."""
        return bool(self.execute("SELECT pg_is_in_recovery()")[0][0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists"; it is gone for our purposes.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


class PgCluster:
    """A primary and ``n`` streaming replicas in one temporary directory."""

    def __init__(self, base: Path, nodes: list[PgNode]) -> None:
        self.base = base
        self.nodes = nodes
        self.primary = nodes[0]

    @property
    def replicas(self) -> list[PgNode]:
        return [n for n in self.nodes if n is not self.primary]

    def hosts(self, nodes: Sequence[PgNode] | None = None) -> str:
        """A pgsql_table(5) ``hosts =`` value: the primary first, then the replicas."""
        return " ".join(n.hosts_entry for n in (nodes or [self.primary, *self.replicas]))

    def multihost_url(
        self,
        dbname: str = "postgres",
        *,
        driver: str = "postgresql",
        target: str = "read-write",
        nodes: Sequence[PgNode] | None = None,
    ) -> str:
        """A multi-host libpq URL (libpq "Connection URIs": ``host=a:1,b:2``)."""
        hosts = ",".join(n.hostport for n in (nodes or [self.primary, *self.replicas]))
        return f"{driver}://postgres@{hosts}/{dbname}?target_session_attrs={target}"

    # -- building ---------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def start(cls, replicas: int = 1) -> Iterator[PgCluster]:
        """Build, start and (on exit) destroy a cluster."""
        if not (PG_BIN / "initdb").exists():
            raise PgClusterError(f"{PG_BIN}/initdb not found (Debian: postgresql-15)")
        base = Path(tempfile.mkdtemp(prefix="mailhost-pg-", dir=TMP_ROOT))
        cluster: PgCluster | None = None
        try:
            owner = _owner()
            if owner is not None:
                entry = pwd.getpwnam(owner)
                os.chown(base, entry.pw_uid, entry.pw_gid)
            base.chmod(0o700)
            names = ["primary", *(f"replica{i + 1}" for i in range(replicas))]
            nodes = [PgNode(name, free_port(), base / name, base) for name in names]
            cluster = cls(base, nodes)
            cluster._init_primary(nodes[0])
            for node in nodes[1:]:
                cluster._copy_cold(node, nodes[0])
            for node in nodes:
                node.start()
            cluster.wait_caught_up()
            yield cluster
        finally:
            if cluster is not None:
                cluster.destroy()
            shutil.rmtree(base, ignore_errors=True)

    def _init_primary(self, node: PgNode) -> None:
        _run([PG_BIN / "initdb", "-N", "-A", "trust", "-U", "postgres", "-E", "UTF8",
              "--locale=C", "-D", node.datadir])  # fmt: skip
        self._configure(node)

    def _configure(self, node: PgNode) -> None:
        """Write this node's settings (port, socket) and the loopback-only pg_hba.conf."""
        conf = _CONF.format(port=node.port, socket_dir=node.socket_dir, name=node.name)
        self._write(node.datadir / "postgresql.conf", conf, append=True)
        self._write(node.datadir / "pg_hba.conf", _HBA, append=False)

    def _write(self, path: Path, text: str, *, append: bool) -> None:
        with path.open("a" if append else "w") as f:
            f.write(text)
        owner = _owner()
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _copy_cold(self, node: PgNode, source: PgNode) -> None:
        """Make ``node`` a replica of the stopped ``source``: a file copy of a
        cleanly shut down cluster plus ``standby.signal`` and ``primary_conninfo``
        (what ``pg_basebackup -R`` writes, PostgreSQL 15 manual 27.2.4), without
        the base backup's checkpoint and WAL switch: faster for a fresh cluster."""
        _run(["cp", "-a", source.datadir, node.datadir])
        self._configure(node)
        (node.datadir / "postmaster.pid").unlink(missing_ok=True)
        conninfo = (
            f"host={source.host} port={source.port} user=postgres application_name={node.name}"
        )
        self._write(node.datadir / "postgresql.auto.conf", f"primary_conninfo = '{conninfo}'\n",
                    append=True)  # fmt: skip
        self._write(node.datadir / "standby.signal", "", append=False)

    def _clone(self, node: PgNode, source: PgNode) -> None:
        """Make ``node`` a streaming replica of ``source`` (``pg_basebackup -R``)."""
        if node.running:
            node.kill()
        shutil.rmtree(node.datadir, ignore_errors=True)
        _run([PG_BIN / "pg_basebackup", "-h", source.host, "-p", str(source.port),
              "-U", "postgres", "-D", node.datadir, "-R", "-X", "stream", "-c", "fast",
              "--no-sync"])  # fmt: skip
        self._configure(node)  # the copied postgresql.conf names the source's port
        node.start()

    # -- topology changes -------------------------------------------------------

    def promote(self, node: PgNode) -> PgNode:
        """Promote ``node`` and make it :attr:`primary` (the old one is left as it is)."""
        node.promote()
        deadline = time.monotonic() + 30
        while node.in_recovery:
            if time.monotonic() > deadline:
                raise PgClusterError(f"{node.name}: still in recovery after promote")
            time.sleep(0.05)
        self.primary = node
        return node

    def reset(self) -> None:
        """Back to "one primary, every replica streaming from it".

        The writable node that has the newest timeline stays primary (after a
        promotion that is the promoted replica); every other node is
        re-cloned from it unless it is already a running replica of it.
        """
        if not self.primary.running:
            self.primary.start()
        if self.primary.in_recovery:  # a stopped primary came back, nobody was promoted
            raise PgClusterError(f"{self.primary.name}: is a replica, no primary to reset to")
        for node in self.replicas:
            if not self._follows_primary(node):
                self._clone(node, self.primary)
        self.wait_caught_up()

    def _follows_primary(self, node: PgNode) -> bool:
        """Is ``node`` a running replica streaming from :attr:`primary`?"""
        if not node.running:
            with contextlib.suppress(PgClusterError):
                node.start()
        try:
            recovering, conninfo = node.execute(
                "SELECT pg_is_in_recovery(), current_setting('primary_conninfo')"
            )[0]
        except Exception:  # a node that does not answer is rebuilt
            return False
        if not recovering or f"port={self.primary.port}" not in str(conninfo).split():
            return False
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            rows = node.execute("SELECT status FROM pg_stat_wal_receiver")
            if rows and rows[0][0] == "streaming":
                return True
            time.sleep(0.05)
        return False

    def wait_caught_up(self, timeout: float = 15.0) -> None:
        """Wait until every running replica has replayed the primary's current WAL."""
        lsn = self.primary.execute("SELECT pg_current_wal_lsn()::text")[0][0]
        deadline = time.monotonic() + timeout
        for node in self.replicas:
            if not node.running:
                continue
            while True:
                done = node.execute(
                    "SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)", [lsn]
                )[0][0]
                if done:
                    break
                if time.monotonic() > deadline:
                    raise PgClusterError(f"{node.name}: not caught up with {lsn} in {timeout}s")
                time.sleep(0.02)

    def destroy(self) -> None:
        """Stop every server (immediately) and remove the directory."""
        try:
            for node in self.nodes:
                if node.running:
                    try:
                        _run([PG_BIN / "pg_ctl", "stop", "-w", "-t", "15", "-m", "immediate",
                              "-D", node.datadir])  # fmt: skip
                    except (PgClusterError, subprocess.TimeoutExpired):
                        node.kill()
        finally:
            for node in self.nodes:
                if node.running:
                    node.kill()
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL 15 primary and two streaming replicas for the session."""
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(PgCluster.start(replicas=2))
        except PgClusterError as exc:
            if REQUIRE:
                pytest.fail(str(exc))
            pytest.skip(str(exc))
        yield cluster
