"""Query files for the failover tests: a ``mailbox`` lookup and a "which
server answered" lookup (``inet_server_port()``), over every cluster node."""

from __future__ import annotations

from pathlib import Path

from tests.support.pg_cluster import PgCluster, PgNode

DBNAME = "postgres"
#: The PostfixAdmin-shaped lookup the tests ask.
MAILBOX_QUERY = "SELECT maildir FROM fo_mailbox WHERE username='%s' AND active"
#: Answers the port of the server that ran it: which host a lookup used.
WHO_QUERY = "SELECT inet_server_port()::text WHERE '%s' <> ''"


def prepare(cluster: PgCluster) -> None:
    """The lookup table on the primary, replicated everywhere."""
    cluster.primary.execute(
        "CREATE TABLE IF NOT EXISTS fo_mailbox"
        " (username text PRIMARY KEY, maildir text NOT NULL, active boolean DEFAULT true)"
    )
    cluster.primary.execute(
        "INSERT INTO fo_mailbox VALUES ('user@example.com', 'example.com/user/')"
        " ON CONFLICT DO NOTHING"
    )
    cluster.wait_caught_up()


def query_file(path: Path, nodes: list[PgNode], query: str = MAILBOX_QUERY, **extra: str) -> str:
    """Write a pgsql query file naming ``nodes`` and return its table spec."""
    settings = {
        "hosts": " ".join(n.hosts_entry for n in nodes),
        "user": "postgres",
        "dbname": DBNAME,
        "query": query,
        "connect_timeout": "2",
        "query_timeout": "2",
        **extra,
    }
    path.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    return f"pgsql:{path}"
