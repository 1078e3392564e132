"""The throwaway primary + replicas cluster for the failover tests."""

from tests.support.pg_cluster import pg_cluster

__all__ = ["pg_cluster"]
