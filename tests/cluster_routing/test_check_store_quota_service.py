"""``check_store_quota_service`` on an edge: after alias expansion, the
quota-status service of each final mailbox's store is asked (real services
of three stores on 127.0.0.11-13, the routes from the cluster's
transport_maps query on each database); a fan-out is refused only when
every member is; a store that cannot be asked gives the default action."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailhost.address import parse_path
from mailhost.config import load_config
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.smtpd_check.build import smtpd_checks
from mailhost.smtpd_check.state import CheckState, Client, Where
from mailhost.tables.registry import TableRegistry
from tests.cluster_routing.conftest import write_edge
from tests.cluster_routing.stores import OVERQUOTA, running_stores
from tests.support.net import free_port


def refused(address: str, reply: str = OVERQUOTA) -> str:
    code, status, text = reply.split(" ", 2)
    return f"{code} {status} <{address}>: Recipient address rejected: {text}"


async def _replies(directory: Path, recipients: list[str]) -> dict[str, str | None]:
    cfg = load_config(directory)
    registry = TableRegistry.from_config(cfg)
    resolver = Resolver(ResolverSettings.from_config(cfg, registry))
    checks = smtpd_checks(cfg, registry, resolver)
    out: dict[str, str | None] = {}
    try:
        for rcpt in recipients:
            state = CheckState(
                Client("client.example", "192.0.2.1"), helo="client.example",
                sender="sender@example.org", where=Where.RCPT, protocol="ESMTP", size=100,
            )  # fmt: skip
            reply = await checks.rcpt(state, parse_path(f"<{rcpt}>"))
            out[rcpt] = None if reply is None else str(reply)
    finally:
        checks.settings.policy.close()
        await registry.close()
    return out


def _edge(directory: Path, db, port: int, extra: str = "") -> Path:
    return write_edge(
        directory,
        db,
        "smtpd_recipient_restrictions = reject_unauth_destination, check_store_quota_service\n"
        f"mailhost_store_quota_service_port = {port}\n" + extra,
    )


EXPECTED = {
    "u1@a.example": refused("u1@a.example"),  # full, on store 1
    "u2@a.example": None,  # half full, on store 2
    "u2+tag@a.example": None,
    "u3@b.example": refused("u3@b.example"),  # full, moved to store 3
    "fulls@a.example": refused("fulls@a.example"),  # u1 (store 1) and u3 (store 3): both full
    "team@a.example": None,  # u2 has room: the fan-out is accepted
    "fwd@a.example": None,  # u1 full, but a copy leaves the cluster
    "u5@b.example": None,  # routed 'virtual': no store to ask
}


async def test_each_final_mailbox_asks_its_store(cluster_db, tmp_path):
    port = free_port()
    edge = _edge(tmp_path, cluster_db, port)
    async with running_stores(tmp_path, port) as stores:
        got = await _replies(edge, list(EXPECTED))
        asked = {host: service.requests for host, service in stores.items()}
    assert got == EXPECTED
    # u1: 4 times (u1, fulls, team, fwd); u2: 3 (u2, u2+tag, team); u3: 3 (u3, fulls, team)
    assert asked == {"127.0.0.11": 4, "127.0.0.12": 3, "127.0.0.13": 3}


@pytest.mark.parametrize(
    ("extra", "u2_reply"),
    [
        ("", None),  # default DUNNO: the edge queues, the store decides at delivery
        (
            "mailhost_store_quota_service_default_action = DEFER_IF_PERMIT Store unavailable\n"
            "smtpd_policy_service_try_limit = 1\n",
            "450 4.7.1 <u2@a.example>: Recipient address rejected: Store unavailable",
        ),
    ],
)
async def test_unreachable_store_gives_the_default_action(cluster_db, tmp_path, extra, u2_reply):
    port = free_port()
    edge = _edge(tmp_path, cluster_db, port, "smtpd_policy_service_timeout = 2s\n" + extra)
    async with running_stores(tmp_path, port, hosts=("127.0.0.11", "127.0.0.13")):
        got = await _replies(edge, ["u2@a.example", "u1@a.example", "fulls@a.example"])
    assert got == {
        "u2@a.example": u2_reply,
        "u1@a.example": refused("u1@a.example"),
        "fulls@a.example": refused("fulls@a.example"),
    }
