"""mailhost's RCPT TO quota check gives the replies Postfix 3.7.11 gives with
Dovecot 2.3.19's quota-status policy service (check_policy_service) in its
default configuration: recorded by record_postfix_quota_status.py into
postfix_quota_status.json (same mailboxes, same maildirsize contents, same
SIZE= values).  Dovecot's default quota_grace is 10 %; mailhost's is 0, so
the comparison sets ``mailhost_quota_grace = 10%``, and a second test shows
what mailhost's default changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailhost.address import parse_path
from mailhost.config import load_config
from mailhost.quota.rcpt import RcptQuotaCheck
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.tables.registry import TableRegistry

RECORDED = json.loads((Path(__file__).parent / "postfix_quota_status.json").read_text())
OK = "250 2.1.5 Ok"


def site(tmp_path: Path, extra: str = "") -> RcptQuotaCheck:
    limit = RECORDED["limit"]
    names = sorted(RECORDED["mailboxes"])
    mailboxes = ", ".join(f"{n}@example.com=example.com/{n}/" for n in names)
    limits = ", ".join(f"{n}@example.com={limit}" for n in names)
    (tmp_path / "main.cf").write_text(
        "mydestination =\nalias_maps =\nvirtual_mailbox_domains = example.com\n"
        f"virtual_mailbox_base = {tmp_path}/vmail\n"
        f"virtual_mailbox_maps = inline:{{{mailboxes}}}\n"
        f"virtual_mailbox_limit_maps = inline:{{{limits}}}\n" + extra
    )
    for name, used in RECORDED["mailboxes"].items():
        maildir = tmp_path / "vmail" / "example.com" / name
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True)
        (maildir / "maildirsize").write_text(f"{limit}S\n{used} {1 if used else 0}\n")
    cfg = load_config(tmp_path)
    registry = TableRegistry.from_config(cfg)
    check = RcptQuotaCheck.from_config(
        cfg, registry, Resolver(ResolverSettings.from_config(cfg, registry))
    )
    assert check is not None
    return check


async def answer(check: RcptQuotaCheck, case: str) -> str:
    size, rcpt = RECORDED["cases"][case]
    reply = await check.check(parse_path(f"<{rcpt}>"), size or 0)
    return OK if reply is None else str(reply)


@pytest.mark.parametrize("case", sorted(RECORDED["cases"]))
async def test_rcpt_quota_matches_postfix_with_dovecot_quota_status(
    tmp_path: Path, case: str
) -> None:
    check = site(tmp_path, "mailhost_quota_grace = 10%\n")
    assert await answer(check, case) == RECORDED["replies"][case]


async def test_default_grace_zero_refuses_what_would_pass_the_limit(tmp_path: Path) -> None:
    check = site(tmp_path)
    assert await answer(check, "half_size_fits") == OK
    assert await answer(check, "roomy_size_at_limit") == OK
    for case in ("half_size_within_grace", "roomy_size_within_grace"):
        rcpt = RECORDED["cases"][case][1]
        assert await answer(check, case) == (
            f"554 5.2.2 <{rcpt}>: Recipient address rejected: "
            "Quota exceeded (mailbox for user is full)"
        )
