"""Fixtures of the cluster test: the PostgreSQL primary + streaming replica
(tests/support/pg_cluster.py), the loopback DNS server and the cluster run
itself (tests/cluster/scenario.py), once per module."""

from __future__ import annotations

from tests.support.pg_cluster import pg_cluster

__all__ = ["pg_cluster"]
