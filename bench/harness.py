"""Shared pieces of the server benchmarks (not part of the test suite).

A benchmark here sets up real Postfix 3.7 (Debian's package, its own
config_directory and queue_directory, listening only on 127.0.0.1) and
``mailhost serve`` on equivalent virtual-mailbox configurations: one domain,
the same mailboxes in one database, the same ``sqlite:``/``pgsql:`` query
files (copied from ``examples/``), each server delivering into its own
``virtual_mailbox_base`` on the same file system as the same uid.

Everything here is blocking and runs in the benchmark's own process; the
servers are child processes that :class:`Server` starts and stops.
"""

from __future__ import annotations

import contextlib
import csv
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOMAIN = "example.com"
#: smtp-source -r N prepends 0..N-1 to the recipient (smtp-source(1)); the
#: plain address serves -r 1.
LOCALPART = "bench"
MAX_FANOUT = 20
MAILBOXES = [LOCALPART] + [f"{i}{LOCALPART}" for i in range(MAX_FANOUT)] + ["probe"]
QUERY_FILES = (
    "virtual_mailbox_domains.cf",
    "virtual_mailbox_maps.cf",
    "virtual_alias_maps.cf",
    "virtual_alias_domain_maps.cf",
    "virtual_alias_domain_catchall_maps.cf",
)
PG = {"host": "127.0.0.1", "user": "postgres"}


def mail_uid() -> tuple[int, int]:
    """The uid/gid both servers deliver as (nobody when run as root)."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mailhost_bin() -> str:
    candidate = Path(sys.executable).parent / "mailhost"
    return str(candidate) if candidate.exists() else "mailhost"


def machine() -> str:
    """One line describing this machine for the results."""
    cpus = os.cpu_count()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    distro = ""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip('"')
    load = os.getloadavg()
    return (
        f"{cpus}-core {platform.machine()} ({model}), {mem}, {distro}, "
        f"Python {platform.python_version()}, load average at start "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
    )


# -- the database both servers read --------------------------------------------------


@dataclass
class Database:
    """The PostfixAdmin-schema database and the query files for it."""

    kind: str  # "sqlite" or "pgsql"
    work: Path
    url: str = ""
    pg_name: str = ""

    @property
    def maps(self) -> Path:
        return self.work / "maps"

    def create(self) -> None:
        """Create the schema with ``mailhost db upgrade``, provision the domain
        and its mailboxes with ``mailhost domain add`` / ``mailbox import``, and
        write the query files."""
        data = self.work / "data"
        data.mkdir(parents=True, exist_ok=True)
        # Postfix's daemons read the database as the postfix user.
        os.chmod(self.work, 0o755)
        os.chmod(data, 0o777)
        if self.kind == "sqlite":
            self.url = f"sqlite:///{data}/mailhost.sqlite"
        else:
            import psycopg

            self.pg_name = f"mhbench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(**PG, dbname="postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
            self.url = f"postgresql://postgres@127.0.0.1/{self.pg_name}"
        admin = self.work / "admin"
        admin.mkdir(exist_ok=True)
        (admin / "main.cf").write_text(f"mailhost_database_url = {self.url}\n")
        run = [mailhost_bin()]
        subprocess.run([*run, "db", "upgrade", "-c", str(admin)], check=True, capture_output=True)
        subprocess.run(
            [*run, "domain", "add", DOMAIN, "-c", str(admin), "--description", "bench"],
            check=True, capture_output=True,
        )  # fmt: skip
        rows = admin / "mailboxes.csv"
        with rows.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["address", "password"])
            for local in MAILBOXES:
                writer.writerow([f"{local}@{DOMAIN}", f"pw-{local}"])
        subprocess.run(
            [*run, "mailbox", "import", str(rows), "-c", str(admin)],
            check=True, capture_output=True,
        )  # fmt: skip
        if self.kind == "sqlite":
            os.chmod(data / "mailhost.sqlite", 0o666)
        self.maps.mkdir(exist_ok=True)
        os.chmod(self.maps, 0o755)
        source = REPO / "examples" / self.kind
        for name in QUERY_FILES:
            self.write_query_file(name, (source / name).read_text())

    def write_query_file(self, name: str, text: str) -> None:
        lines = []
        for original in text.splitlines():
            line = original
            key = line.split("=", 1)[0].strip()
            if self.kind == "sqlite" and key == "dbpath":
                line = f"dbpath = {self.work}/data/mailhost.sqlite"
            elif self.kind == "pgsql" and key == "user":
                line = "user = postgres"
            elif self.kind == "pgsql" and key == "password":
                continue
            elif self.kind == "pgsql" and key == "dbname":
                line = f"dbname = {self.pg_name}"
            lines.append(line)
        path = self.maps / name
        path.write_text("\n".join(lines) + "\n")
        os.chmod(path, 0o644)

    def map_spec(self, name: str) -> str:
        # pgsql through proxymap(8), as Postfix is deployed: one connection
        # per smtpd/cleanup process and table would exhaust PostgreSQL's
        # max_connections at -s 100 (mailhost treats proxy: as pass-through).
        proxy = "proxy:" if self.kind == "pgsql" else ""
        return f"{proxy}{self.kind}:{self.maps / name}"

    def lookup_params(self) -> str:
        return (
            f"virtual_mailbox_domains = {self.map_spec('virtual_mailbox_domains.cf')}\n"
            f"virtual_mailbox_maps = {self.map_spec('virtual_mailbox_maps.cf')}\n"
            "virtual_alias_maps =\n"
            f"    {self.map_spec('virtual_alias_maps.cf')},\n"
            f"    {self.map_spec('virtual_alias_domain_maps.cf')},\n"
            f"    {self.map_spec('virtual_alias_domain_catchall_maps.cf')}\n"
        )

    def drop(self) -> None:
        if self.kind == "pgsql" and self.pg_name:
            import psycopg

            with psycopg.connect(**PG, dbname="postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')


# -- process trees and their memory ---------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    tree = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, ()))
    return out


def _kb(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def memory_kb(root: int) -> tuple[int, int, int]:
    """(sum of RSS, sum of PSS, number of processes) of ``root``'s tree."""
    rss = pss = n = 0
    for pid in process_tree(root):
        r = _kb(f"/proc/{pid}/status", "VmRSS:")
        if r:
            n += 1
            rss += r
            pss += _kb(f"/proc/{pid}/smaps_rollup", "Pss:")
    return rss, pss, n


def cpu_seconds(root: int) -> float:
    """CPU time used by ``root``'s live tree plus the children it reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime stime cutime cstime are fields 14-17 (1-based) of stat(5).
        total += sum(int(x) for x in fields[11:15])
    return total / tick


@dataclass
class MemorySampler:
    """Peak memory of a process tree, sampled on a thread every ``interval``."""

    root: int
    interval: float = 0.2
    peak_rss_kb: int = 0
    peak_pss_kb: int = 0
    peak_processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        rss, pss, n = memory_kb(self.root)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        self.peak_processes = max(self.peak_processes, n)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


# -- the two servers ------------------------------------------------------------------


def wait_banner(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no SMTP banner on 127.0.0.1:{port} within {timeout:.0f}s")


class Server:
    """One server under test: configure once, then start/stop per case."""

    name = ""

    def __init__(self, work: Path, db: Database) -> None:
        self.work = work
        self.db = db
        self.port = free_port()
        self.uid, self.gid = mail_uid()

    @property
    def vmail(self) -> Path:
        return self.work / "vmail"

    @property
    def maillog(self) -> Path:
        return self.work / "maillog"

    def reset_mail(self) -> None:
        """Give the server empty Maildirs (between cases, with it stopped).

        The previous run's Maildirs are moved aside, not removed: they go
        with the work directory at the end.  Removing thousands of files
        here would tax the next run of either server on an ext4 file system
        without a journal (this machine kind's root), where each new inode
        is found by walking past every inode of its group freed in the last
        one to six minutes (``recently_deleted()``); that is the harness's
        cost, not the server's."""
        if self.vmail.exists():
            n = 1
            while (aside := self.work / f"vmail.{n}").exists():
                n += 1
            self.vmail.rename(aside)
        self.vmail.mkdir(parents=True)
        os.chown(self.vmail, self.uid, self.gid)
        self.maillog.write_bytes(b"")

    def root_pid(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class PostfixServer(Server):
    """Debian's Postfix with a config_directory of its own (``postfix -c``)."""

    name = "postfix"

    def __init__(self, work: Path, db: Database, extra: str = "") -> None:
        super().__init__(work, db)
        self.etc = work / "etc"
        self.queue = work / "queue"
        self.extra = extra

    def configure(self) -> None:
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.work / "data").mkdir(exist_ok=True)
        shutil.chown(self.work / "data", "postfix", "postfix")
        main = f"""\
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.work}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.{DOMAIN}
mydomain = {DOMAIN}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
recipient_delimiter = +
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = {self.maillog}
delay_logging_resolution_limit = 3
virtual_transport = virtual
virtual_mailbox_base = {self.vmail}
virtual_minimum_uid = 1
virtual_uid_maps = static:{self.uid}
virtual_gid_maps = static:{self.gid}
{self.db.lookup_params()}{self.extra}"""
        (self.etc / "main.cf").write_text(main)
        master = []
        for original in Path("/etc/postfix/master.cf.proto").read_text().splitlines():
            line = original
            if line.startswith("smtp      inet"):
                line = f"127.0.0.1:{self.port} inet n - n - - smtpd"
            else:
                # No chroot: the queue directory is a throwaway one.
                fields = line.split()
                if len(fields) >= 8 and not line[0].isspace() and not line.startswith("#"):
                    fields[4] = "n"
                    line = " ".join(fields)
            master.append(line)
        (self.etc / "master.cf").write_text("\n".join(master) + "\n")
        self.queue.mkdir(exist_ok=True)
        os.chmod(self.queue, 0o755)
        check = subprocess.run(
            ["postfix", "-c", str(self.etc), "check"], check=False, capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"postfix check: {check.stderr.strip()}")

    def root_pid(self) -> int:
        return int((self.queue / "pid" / "master.pid").read_text().split()[0])

    def start(self) -> None:
        subprocess.run(["postfix", "-c", str(self.etc), "start"], check=True, capture_output=True)
        wait_banner(self.port)

    def stop(self) -> None:
        subprocess.run(["postfix", "-c", str(self.etc), "stop"], check=False, capture_output=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                pid = self.root_pid()
                os.kill(pid, 0)
            except (OSError, ValueError):
                return
            time.sleep(0.1)


class MailhostServer(Server):
    """``mailhost serve -c DIR`` with smtpd and qmgr lines in master.cf."""

    name = "mailhost"

    def __init__(
        self, work: Path, db: Database, extra: str = "", env: dict[str, str] | None = None
    ) -> None:
        super().__init__(work, db)
        self.etc = work / "etc"
        self.extra = extra
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def configure(self) -> None:
        self.etc.mkdir(parents=True, exist_ok=True)
        main = f"""\
myhostname = mail.{DOMAIN}
mydomain = {DOMAIN}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
local_recipient_maps =
recipient_delimiter = +
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
queue_directory = {self.work}/queue
data_directory = {self.work}/data
mailhost_database_url = {self.db.url}
delay_logging_resolution_limit = 3
virtual_transport = virtual
virtual_mailbox_base = {self.vmail}
virtual_minimum_uid = 1
virtual_uid_maps = static:{self.uid}
virtual_gid_maps = static:{self.gid}
{self.db.lookup_params()}{self.extra}"""
        (self.etc / "main.cf").write_text(main)
        (self.etc / "master.cf").write_text(
            f"127.0.0.1:{self.port} inet n - n - - smtpd\nqmgr unix n - n 300 1 qmgr\n"
        )

    def root_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        log = self.maillog.open("ab")
        self.proc = subprocess.Popen(
            [mailhost_bin(), "serve", "-c", str(self.etc)],
            stdout=log, stderr=log, env={**os.environ, **self.env},
        )  # fmt: skip
        log.close()
        try:
            wait_banner(self.port)
        except RuntimeError as exc:
            self.stop()
            text = self.maillog.read_text()[-2000:]
            raise RuntimeError(f"mailhost did not start:\n{text}") from exc

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


# -- results ---------------------------------------------------------------------------

_SENT = re.compile(r" ([0-9A-Za-z]+): to=<[^>]*>,.* delay=([0-9.]+),.* status=sent ")


def delivery_delays(maillog: Path) -> dict[str, float]:
    """Per queue id, the ``delay=`` of its last delivered recipient (arrival
    to delivery, as the server logs it)."""
    out: dict[str, float] = {}
    for line in maillog.read_text(errors="replace").splitlines():
        m = _SENT.search(line)
        if m:
            qid, delay = m.group(1), float(m.group(2))
            out[qid] = max(out.get(qid, 0.0), delay)
    return out


def maildir_files(base: Path) -> Iterator[os.DirEntry[str]]:
    """Every delivered message file under ``base`` (``*/*/new/*``)."""
    with contextlib.suppress(FileNotFoundError):
        for domain in os.scandir(base):
            if not domain.is_dir():
                continue
            for box in os.scandir(domain.path):
                with contextlib.suppress(FileNotFoundError):
                    yield from os.scandir(os.path.join(box.path, "new"))


def count_files(base: Path) -> int:
    return sum(1 for _ in maildir_files(base))


def last_mtime(base: Path) -> float:
    return max((e.stat().st_mtime_ns for e in maildir_files(base)), default=0) / 1e9


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
