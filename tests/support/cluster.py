"""The nodes of a mailhost cluster on loopback, for tests/cluster and
bench/cluster.py (docs/scaling.md).

The shape is the one of docs/design.md's edge/store split::

    sender ──SMTP──▶ relay (127.0.0.13) ──MX──▶ edge1 (127.0.0.11) ─┐ ──LMTP──▶ store1 (127.0.0.21)
                                                edge2 (127.0.0.12) ─┘           store2 (127.0.0.22)
                     shared state: PostgreSQL primary + streaming replica

Every node is a real ``mailhost serve`` process with its own configuration
directory, queue and maillog, started in its own session so that a SIGKILL
reaches every process it forked (prefork workers) at once.  All SMTP nodes
listen on one port number, each on its own 127.0.0.x address, so that
``smtp_tcp_port`` is that port everywhere: the relay reaches the edges through
the MX records of the loopback DNS server (tests/smtp/dnsserver.py), and the
edges return non-delivery notices to the relay the same way.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner

from mailhost.cli import cli

ROOT = Path(__file__).resolve().parents[2]

RELAY_ADDRESS = "127.0.0.13"
EDGE_ADDRESSES = ("127.0.0.11", "127.0.0.12")
STORE_ADDRESSES = ("127.0.0.21", "127.0.0.22")
#: The domain of the sender's own mailbox (on the relay): non-delivery
#: notices come back to it through its MX record.
SENDER_DOMAIN = "sender.test"
SENDER = f"loadgen@{SENDER_DOMAIN}"

#: Queue timers short enough for a test: a deferred message is retried
#: within a second or two of the failure that deferred it.
FAST_RETRY: Mapping[str, str] = {
    "queue_run_delay": "1s",
    "minimal_backoff_time": "1s",
    "maximal_backoff_time": "2s",
    "smtp_connect_timeout": "2s",
    "lmtp_connect_timeout": "2s",
    "smtp_connection_cache_time_limit": "2s",
    "lmtp_connection_cache_time_limit": "2s",
}


def common_port(addresses: Iterable[str]) -> int:
    """A TCP port nothing listens on at any of ``addresses`` (now)."""
    wanted = list(addresses)
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((wanted[0], 0))
            port = int(probe.getsockname()[1])
        if all(_bindable(address, port) for address in wanted[1:]):
            return port
    raise OSError("no port free on every cluster address")


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
        return True


def main_cf_text(params: Mapping[str, object]) -> str:
    return "".join(f"{name} = {value}\n".replace(" = \n", " =\n") for name, value in params.items())


def query_file(hosts: Sequence[str], dbname: str, query: str, user: str = "postgres") -> str:
    """A pgsql query file reaching every host of ``hosts`` (``host:port``),
    in order: pgsql_table(5) tries the next host when one fails."""
    listed = " ".join(f"inet:{host}" for host in hosts)
    return f"hosts = {listed}\nuser = {user}\npassword =\ndbname = {dbname}\nquery = {query}\n"


@dataclass
class Node:
    """One ``mailhost serve`` process on its own configuration directory."""

    name: str
    directory: Path
    address: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log_offset: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def maillog(self) -> Path:
        return self.directory / "maillog"

    @property
    def queue(self) -> Path:
        return self.directory / "queue"

    def configure(self, main_cf: Mapping[str, object], master_cf: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "main.cf").write_text(main_cf_text(main_cf))
        (self.directory / "master.cf").write_text(master_cf)

    def write(self, name: str, text: str) -> Path:
        path = self.directory / name
        path.write_text(text)
        return path

    def start(self, timeout: float = 60.0) -> None:
        """Start the node and wait until its listener answers."""
        self.spawn()
        self.wait_started(timeout)

    def spawn(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        self._log_offset = self.maillog.stat().st_size if self.maillog.exists() else 0
        with self.maillog.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailhost", "serve", "-c", str(self.directory)],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONPATH": str(ROOT), **self.extra_env},
                start_new_session=True,
            )
        self.starts += 1

    def wait_started(self, timeout: float = 60.0) -> None:
        """Until the node logs that its listeners are open.  (Not by trying
        to connect: each probe would be a lost connection in the maillog
        that pflogsumm reads.)"""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while b"daemon started" not in self.maillog.read_bytes()[self._log_offset :]:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """``sig`` to every process of the node (its session), then reap it."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGTERM)
        elif self.proc is not None:
            self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if not self.maillog.exists():
            return "(no maillog)"
        return "\n".join(self.maillog.read_text(errors="replace").splitlines()[-lines:])

    def queued(self) -> int:
        """Messages in the node's queue (incoming, active, deferred, hold)."""
        return sum(
            sum(1 for p in (self.queue / q).rglob("*") if p.is_file())
            for q in ("incoming", "active", "deferred", "hold")
            if (self.queue / q).is_dir()
        )


@dataclass
class Mailbox:
    address: str
    #: Index of the store node the mailbox lives on.
    store: int
    #: Quota in bytes, 0 = unlimited.
    quota: int = 0

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def maildir(self) -> str:
        local, _, domain = self.address.rpartition("@")
        return f"{domain}/{local}/"


@dataclass
class Cluster:
    """Two edges, two stores and a relay sharing one PostgreSQL database
    (``db_hosts``: the primary first, then its replicas)."""

    root: Path
    db_hosts: Sequence[str]
    dbname: str
    dns_address: str
    port: int = 0
    #: The port of the stores' quota-status services.
    quota_port: int = 0
    #: The port of the stores' own smtpd (``mailhost serve`` needs one).
    store_smtpd_port: int = 0
    #: main.cf settings every node gets last (a benchmark's cache TTL, ...).
    extra: dict[str, object] = field(default_factory=dict)
    #: Each node's /metrics endpoint on its address (0: none).
    metrics_port: int = 0
    #: role ("edge", "store") -> the database user its query files name
    #: (default postgres): the server's log can tell the roles apart.
    db_users: dict[str, str] = field(default_factory=dict)
    #: Each provisioned domain's store (its route).
    domain_stores: dict[str, int] = field(default_factory=dict)
    relay: Node = field(init=False)
    edges: list[Node] = field(init=False)
    stores: list[Node] = field(init=False)

    def __post_init__(self) -> None:
        if not self.port:
            self.port = common_port((RELAY_ADDRESS, *EDGE_ADDRESSES, *STORE_ADDRESSES))
        while self.quota_port in (0, self.port):
            self.quota_port = common_port(STORE_ADDRESSES)
        while self.store_smtpd_port in (0, self.port, self.quota_port):
            self.store_smtpd_port = common_port(STORE_ADDRESSES)
        self.relay = Node("relay", self.root / "relay", RELAY_ADDRESS, self.port)
        self.edges = [
            Node(f"edge{i + 1}", self.root / f"edge{i + 1}", address, self.port)
            for i, address in enumerate(EDGE_ADDRESSES)
        ]
        self.stores = [
            Node(f"store{i + 1}", self.root / f"store{i + 1}", address, self.port)
            for i, address in enumerate(STORE_ADDRESSES)
        ]

    @property
    def nodes(self) -> list[Node]:
        return [self.relay, *self.edges, *self.stores]

    @property
    def database_url(self) -> str:
        """Every database host (libpq's multi-host form): provisioning goes
        to whichever is the primary (docs/provisioning.md)."""
        return f"postgresql://postgres@{','.join(self.db_hosts)}/{self.dbname}"

    def store_nexthop(self, index: int) -> str:
        """The transport:nexthop that reaches store ``index``."""
        return f"lmtp:inet:{STORE_ADDRESSES[index]}:{self.port}"

    def vmail(self, store: int) -> Path:
        return self.stores[store].directory / "vmail"

    def zone_records(self, domains: Iterable[str]) -> list[tuple[str, str, str]]:
        """The DNS records of the cluster: every hosted domain has both edges
        as MX hosts of equal preference; the sender's domain is the relay's."""
        records = [
            ("relay.cluster.test", "A", RELAY_ADDRESS),
            (SENDER_DOMAIN, "MX", "10 relay.cluster.test."),
        ]
        for i, address in enumerate(EDGE_ADDRESSES):
            records.append((f"edge{i + 1}.cluster.test", "A", address))
        for domain in domains:
            records += [(domain, "MX", f"10 edge{i + 1}.cluster.test.") for i in range(2)]
        return records

    def sql_maps(self, node: Node, role: str) -> dict[str, object]:
        """The recipient tables every edge and store reads from the database,
        as the database user of ``role`` (``db_users``, else postgres)."""
        hosts, db = self.db_hosts, self.dbname
        user = self.db_users.get(role, "postgres")
        files = {
            "virtual_mailbox_domains": "SELECT domain FROM domain WHERE domain = '%s' "
            "AND backupmx = false AND active = '1'",
            "virtual_mailbox_maps": "SELECT maildir FROM mailbox WHERE username = '%s' "
            "AND active = '1'",
            "virtual_mailbox_limit_maps": "SELECT quota FROM mailbox WHERE username = '%s' "
            "AND active = '1'",
            # examples/cluster/pgsql/transport_maps.cf: the mailbox's own
            # store, else its domain's.
            "transport_maps": "SELECT route FROM (SELECT COALESCE(NULLIF("
            "mailbox.mailhost_transport, ''), domain.transport) AS route FROM mailbox "
            "JOIN domain ON domain.domain = mailbox.domain WHERE mailbox.username = '%s' "
            "AND mailbox.active = '1' AND domain.active = '1' UNION ALL SELECT transport "
            "AS route FROM domain WHERE domain = '%s' AND active = '1') AS found "
            "WHERE route <> ''",
            # examples/cluster/pgsql/store_quota_class.cf: the restriction
            # class asking the quota-status service of the mailbox's store.
            "store_quota_class": "SELECT restriction_class FROM (SELECT CASE COALESCE("
            "NULLIF(mailbox.mailhost_transport, ''), domain.transport) "
            + " ".join(
                f"WHEN '{self.store_nexthop(i)}' THEN 'store_{i + 1}_quota'"
                for i in range(len(STORE_ADDRESSES))
            )
            + " END AS restriction_class FROM mailbox JOIN domain ON domain.domain = "
            "mailbox.domain WHERE mailbox.username = '%s' AND mailbox.active = '1' AND "
            "domain.active = '1') AS found WHERE restriction_class IS NOT NULL",
        }
        params: dict[str, object] = {}
        for name, query in files.items():
            path = node.write(f"{name}.cf", query_file(hosts, db, query, user))
            params[name] = f"proxy:pgsql:{path}"
        return params

    def common(self, node: Node, hostname: str) -> dict[str, object]:
        return {
            "myhostname": hostname,
            "mydomain": "cluster.test",
            "mydestination": "",
            "alias_maps": "",
            "local_recipient_maps": "",
            "inet_interfaces": node.address,
            "inet_protocols": "ipv4",
            "queue_directory": node.queue,
            "data_directory": node.directory / "data",
            "smtpd_error_sleep_time": "0",
            "smtp_tcp_port": self.port,
            "mailhost_dns_servers": self.dns_address,
            **FAST_RETRY,
            **(
                {"mailhost_metrics_listen": f"{node.address}:{self.metrics_port}"}
                if self.metrics_port
                else {}
            ),
        }

    def _quota_classes(self, class_table: object) -> dict[str, object]:
        """RCPT-time quota on an edge: one restriction class per store asking
        its quota-status service (examples/cluster/edge/main.cf, way (a))."""
        classes = {
            f"store_{i + 1}_quota": f"check_policy_service inet:{address}:{self.quota_port}"
            for i, address in enumerate(STORE_ADDRESSES)
        }
        return {
            "smtpd_restriction_classes": ", ".join(classes),
            **classes,
            "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination, "
            f"reject_unlisted_recipient, check_recipient_access {class_table}",
            # A store that cannot be asked (down): the edge takes the mail,
            # queues it and the store decides at delivery (as mailhost's
            # check_store_quota_service does by default).
            "smtpd_policy_service_default_action": "DUNNO",
        }

    def configure(self) -> None:
        """Write every node's main.cf, master.cf and query files."""
        qmgr = "qmgr unix n - n 300 1 qmgr\n"
        relay = self.relay
        relay.directory.mkdir(parents=True, exist_ok=True)
        relay.configure(
            {
                **self.common(relay, "relay.cluster.test"),
                "mynetworks": "127.0.0.0/8",
                "virtual_mailbox_domains": SENDER_DOMAIN,
                "virtual_mailbox_maps": f"inline:{{{SENDER}={SENDER_DOMAIN}/loadgen/}}",
                "virtual_mailbox_base": relay.directory / "vmail",
                "virtual_uid_maps": "static:5000",
                "virtual_gid_maps": "static:5000",
                "default_destination_concurrency_limit": "20",
                **self.extra,
            },
            f"{relay.address}:{relay.port} inet n - n - - smtpd\n{qmgr}",
        )
        for i, edge in enumerate(self.edges):
            edge.directory.mkdir(parents=True, exist_ok=True)
            maps = self.sql_maps(edge, "edge")
            class_table = maps.pop("store_quota_class")
            edge.configure(
                {
                    **self.common(edge, f"edge{i + 1}.cluster.test"),
                    # Nobody: the relay's mail meets the recipient restrictions.
                    "mynetworks": "192.0.2.1/32",
                    **maps,
                    "lmtp_destination_concurrency_limit": "10",
                    **self._quota_classes(class_table),
                    **self.extra,
                },
                f"{edge.address}:{edge.port} inet n - n - - smtpd\n{qmgr}",
            )
        for i, store in enumerate(self.stores):
            store.directory.mkdir(parents=True, exist_ok=True)
            store.configure(
                self.store_main_cf(store, f"store{i + 1}.cluster.test", self.vmail(i)),
                f"{store.address}:{store.port} inet n - n - - lmtpd\n"
                f"{store.address}:{self.quota_port} inet n - n - - quota-status\n"
                # mailhost serve refuses a master.cf without an inet smtpd.
                f"{store.address}:{self.store_smtpd_port} inet n - n - - smtpd\n"
                f"{qmgr}virtual unix - n n - - virtual\n",
            )

    def store_main_cf(
        self, node: Node, hostname: str, vmail: Path, role: str = "store"
    ) -> dict[str, object]:
        """A node that delivers into Maildirs below ``vmail`` itself: a
        store (or one node doing everything, bench/cluster.py)."""
        maps = self.sql_maps(node, role)
        maps.pop("transport_maps")
        maps.pop("store_quota_class")
        return {
            **self.common(node, hostname),
            "mynetworks": "127.0.0.0/8",
            **maps,
            "virtual_transport": "virtual",
            "virtual_mailbox_base": vmail,
            "virtual_uid_maps": "static:5000",
            "virtual_gid_maps": "static:5000",
            **self.extra,
        }

    def start(self) -> None:
        """Start every node (at once: each start is mostly Python's imports)."""
        nodes = (*self.stores, *self.edges, self.relay)
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.wait_started()

    def stop(self) -> None:
        """SIGTERM to every node at once, then wait for each."""
        running = [node for node in self.nodes if node.running]
        for node in running:
            assert node.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.proc.pid, signal.SIGTERM)
        for node in running:
            node.stop()

    def mailhost(self, *args: str, stdin: str | None = None) -> str:
        """Run a ``mailhost`` command (in this process) against the cluster's
        database (its primary, whichever host that is now)."""
        run = CliRunner().invoke(cli, [*args, "--database-url", self.database_url], input=stdin)
        if run.exit_code != 0:
            raise RuntimeError(f"mailhost {' '.join(args)}: {run.output}")
        return run.output

    def provision(self, mailboxes: Sequence[Mailbox], password_hash: str) -> None:
        """The schema (alembic migrations), the domains (each routed to the
        store of its first mailbox) and the mailboxes (add_mailboxes)."""
        self.mailhost("db", "upgrade")
        for box in mailboxes:
            if box.domain not in self.domain_stores:
                self.domain_stores[box.domain] = box.store
                nexthop = self.store_nexthop(box.store)
                self.mailhost("domain", "add", box.domain, "--transport", nexthop)
        self.add_mailboxes(mailboxes, password_hash)

    def add_mailboxes(self, mailboxes: Sequence[Mailbox], password_hash: str) -> None:
        """``mailhost mailbox import``, and a route of its own (``mailhost
        mailbox move``) for each mailbox on another store than its domain's."""
        rows = ["address,password_hash,quota"]
        rows += [f"{box.address},{password_hash},{box.quota}" for box in mailboxes]
        self.mailhost("mailbox", "import", "-", stdin="\n".join(rows) + "\n")
        for box in mailboxes:
            if box.store != self.domain_stores[box.domain]:
                self.mailhost("mailbox", "move", box.address, "--to-store",
                              self.store_nexthop(box.store))  # fmt: skip


def message(number: int, recipient: str, padding: int = 600) -> bytes:
    """Test message ``number``: its number in ``X-Cluster-Id``, so that a copy
    found in a Maildir (or quoted in a bounce) says which message it is."""
    return (
        f"From: <{SENDER}>\r\nTo: <{recipient}>\r\nSubject: cluster message {number}\r\n"
        f"Message-ID: <cluster.{number}@{SENDER_DOMAIN}>\r\nX-Cluster-Id: {number}\r\n\r\n"
        + "\r\n".join(["x" * 70] * (padding // 72))
        + "\r\n"
    ).encode()


@dataclass
class Injection:
    """What the sender's injection into the relay got acknowledged."""

    acknowledged: dict[int, str] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)


def inject(
    address: str,
    port: int,
    plan: Sequence[tuple[int, str]],
    connections: int,
    progress: Callable[[int], None] | None = None,
) -> Injection:
    """Send each (number, recipient) of ``plan`` as one message to the relay
    over ``connections`` parallel SMTP sessions; a 250 after the message is
    an acknowledgement.  ``progress(done)`` is called after every message."""
    result = Injection()
    lock = threading.Lock()
    done = 0

    def worker(share: Sequence[tuple[int, str]]) -> None:
        nonlocal done
        client: smtplib.SMTP | None = None
        for number, recipient in share:
            try:
                if client is None:
                    client = smtplib.SMTP(address, port, timeout=60)
                    client.ehlo("loadgen.sender.test")
                refused = client.sendmail(SENDER, [recipient], message(number, recipient))
                with lock:
                    if refused:
                        result.refused[number] = str(refused)
                    else:
                        result.acknowledged[number] = recipient
            except (smtplib.SMTPException, OSError) as exc:
                with lock:
                    result.refused[number] = str(exc)
                if client is not None:
                    with contextlib.suppress(smtplib.SMTPException, OSError):
                        client.close()
                client = None
            with lock:
                done += 1
                current = done
            if progress is not None:
                progress(current)
        if client is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()

    threads = [
        threading.Thread(target=worker, args=(plan[i::connections],), daemon=True)
        for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


_ID = re.compile(rb"^X-Cluster-Id: (\d+)\r?$", re.M)


def maildir_ids(base: Path) -> dict[str, list[int]]:
    """``{address: [X-Cluster-Id of every message in its Maildir]}`` below a
    virtual_mailbox_base laid out ``domain/local/``."""
    found: dict[str, list[int]] = {}
    if not base.is_dir():
        return found
    for domain in base.iterdir():
        for local in domain.iterdir():
            ids = found.setdefault(f"{local.name}@{domain.name}", [])
            for sub in ("new", "cur"):
                if (local / sub).is_dir():
                    for path in (local / sub).iterdir():
                        ids += [int(m) for m in _ID.findall(path.read_bytes())]
    return found


def maildir_usage(maildir: Path) -> int:
    """Bytes of the messages in a Maildir (new and cur), as a quota counts them."""
    return sum(
        path.stat().st_size
        for sub in ("new", "cur")
        if (maildir / sub).is_dir()
        for path in (maildir / sub).iterdir()
    )


def wait_drained(nodes: Sequence[Node], timeout: float) -> bool:
    """Until no node has a message queued (or ``timeout`` seconds passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(node.queued() == 0 for node in nodes):
            return True
        time.sleep(0.25)
    return False
