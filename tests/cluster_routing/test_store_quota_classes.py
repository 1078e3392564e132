"""The plain-Postfix way to refuse an over-quota recipient at an edge: an
SQL ``check_recipient_access`` table (examples/cluster/*/store_quota_class.cf)
names the restriction class of the mailbox's store, and each class is
``check_policy_service`` towards that store's quota-status service.

The class table's answers are Postfix 3.7.11's (``postmap -q`` on the same
database); mailhost's smtpd then evaluates the classes against real
quota-status services of three stores on 127.0.0.11-13 and answers RCPT TO
as a real Postfix edge did (postfix_store_classes.json)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mailhost.address import parse_path
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.smtpd_check.state import CheckState, Client, Where
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry
from tests.cluster_routing.conftest import STORE_1, STORE_2
from tests.cluster_routing.stores import running_stores
from tests.provisioning.conftest import EXAMPLES
from tests.support.checks import StaticFacts
from tests.support.net import free_port

#: (key, class recorded from Postfix 3.7.11 ``postmap -q``; None = not found)
CLASSES = [
    ("u1@a.example", "store_1_quota"),
    ("u2@a.example", "store_2_quota"),
    ("u3@b.example", None),  # a store without a WHEN line: no class
    ("u4@a.example", None),  # disabled mailbox
    ("u5@b.example", None),  # routed 'virtual'
    ("team@a.example", None),  # an alias: not a mailbox
    ("a.example", None),
    ("u1@a.example' OR '1'='1", None),
]


@pytest.fixture(scope="module")
def class_spec(cluster_db, tmp_path_factory) -> str:
    """The shipped class query file on ``cluster_db``, its store names
    replaced by the test's loopback stores (nothing else changed)."""
    text = (EXAMPLES / "cluster" / cluster_db.kind / "store_quota_class.cf").read_text()
    text = text.replace("lmtp:inet:store-1.example:24", STORE_1)
    text = text.replace("lmtp:inet:store-2.example:24", STORE_2)
    keep = [
        line
        for line in text.splitlines()
        if line.split("=")[0].strip() not in {"hosts", "user", "password", "dbname", "dbpath"}
    ]
    connection = cluster_db.query_file("X").splitlines()[:-1]
    target = tmp_path_factory.mktemp("class") / "store_quota_class.cf"
    target.write_text("\n".join([*keep, *connection]) + "\n")
    return f"{cluster_db.kind}:{target}"


def _mailhost(spec: str, key: str) -> str | None:
    from mailhost.tables.registry import open_table

    async def run() -> str | None:
        table = open_table(spec)
        try:
            return await table.lookup(key)
        finally:
            await table.close()

    return asyncio.run(run())


@pytest.mark.parametrize(("key", "expected"), CLASSES, ids=[k for k, _ in CLASSES])
def test_store_class_query_matches_postfix(class_spec, postmap_q, key, expected):
    assert postmap_q(key, class_spec) == expected
    assert _mailhost(class_spec, key) == expected


#: recipient -> the RCPT reply of a real Postfix 3.7.11 edge with these
#: classes and stores (record_postfix_store_classes.py): u1 is full on store 1,
#: u2 half full on store 2; u3 is full but its store has no class; aliases
#: (team, fulls) and the 'virtual'-routed u5 are not checked at all.
RECORDED: dict[str, str] = json.loads(
    (Path(__file__).parent / "postfix_store_classes.json").read_text()
)
OK = "250 2.1.5 Ok"


async def test_restriction_classes_match_postfix(class_spec, tmp_path):
    port = free_port()
    registry = TableRegistry()
    async with running_stores(tmp_path, port) as stores:
        checks = SmtpdChecks(
            CheckSettings(
                lists={"smtpd_recipient_restrictions": ("check_recipient_access", class_spec)},
                classes={
                    "store_1_quota": ("check_policy_service", f"inet:127.0.0.11:{port}"),
                    "store_2_quota": ("check_policy_service", f"inet:127.0.0.12:{port}"),
                },
                reject_unlisted_recipient=False,
                maps={},
            ),
            StaticFacts(final_domains=frozenset({"a.example", "b.example"})),
        )
        checks.settings.maps[class_spec] = Maps.from_value(class_spec, class_spec, registry)
        got = {}
        for rcpt in RECORDED:
            state = CheckState(
                Client("localhost", "127.0.0.1"), helo="client.example.org",
                sender="sender@example.org", where=Where.RCPT, protocol="ESMTP", size=100,
            )  # fmt: skip
            reply = await checks.rcpt(state, parse_path(f"<{rcpt}>"))
            got[rcpt] = OK if reply is None else str(reply)
        checks.settings.policy.close()
        asked = {host: service.requests for host, service in stores.items()}
    await registry.close()
    assert got == RECORDED
    assert asked == {"127.0.0.11": 1, "127.0.0.12": 1, "127.0.0.13": 0}
