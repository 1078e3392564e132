"""RCPT replies and alias expansion compared with a real Postfix 3.7.11.

postfix_rcpt.json was recorded by record_postfix_rcpt.py from a Postfix
instance running scenario.py's main.cf, tables and SQLite database; here
mailhost's resolver is built from the very same files (through load_config,
with each listener's master.cf ``-o`` overrides) and must answer the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailhost.address import parse_path
from mailhost.config import load_config
from mailhost.resolve import AliasExpansionError, Resolver, ResolverSettings
from mailhost.smtpd.recipients import ResolverPolicy
from mailhost.smtpd_check.build import smtpd_checks
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.tables.registry import TableRegistry
from tests.resolve import scenario
from tests.support.checks import rcpt_reply

RECORDED = json.loads((Path(__file__).parent / "postfix_rcpt.json").read_text())


@pytest.fixture(scope="module")
def listeners(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Resolver, SmtpdChecks]]:
    directory = tmp_path_factory.mktemp("scenario")
    scenario.write_files(directory)
    registry = TableRegistry()
    base = load_config(directory)
    built = {}
    for name in scenario.LISTENERS:
        cfg = base.with_overrides(scenario.overrides(name, directory))
        resolver = Resolver(ResolverSettings.from_config(cfg, registry))
        built[name] = (resolver, smtpd_checks(cfg, registry, resolver))
    return built


@pytest.fixture(scope="module")
def resolvers(listeners: dict[str, tuple[Resolver, SmtpdChecks]]) -> dict[str, Resolver]:
    return {name: resolver for name, (resolver, _) in listeners.items()}


async def judge(listener: tuple[Resolver, SmtpdChecks], address: str, client: str,
                login: str | None = None) -> str:  # fmt: skip
    resolver, checks = listener
    return str(await rcpt_reply(checks, ResolverPolicy(resolver), address, client, login))


def test_every_case_was_recorded() -> None:
    assert set(RECORDED["rcpt"]) == set(scenario.RCPT_CASES)
    assert set(RECORDED["expansion"]) == set(scenario.EXPANSION_CASES)
    assert len(RECORDED["rcpt"]) >= 30


@pytest.mark.parametrize("name", sorted(scenario.RCPT_CASES))
async def test_rcpt_reply_matches_postfix(
    listeners: dict[str, tuple[Resolver, SmtpdChecks]], name: str
) -> None:
    listener, client, arg = scenario.RCPT_CASES[name]
    address, login = scenario.CLIENTS[client]
    reply = await judge(listeners[listener], parse_path(arg), address, login)
    assert reply == RECORDED["rcpt"][name]


@pytest.mark.parametrize("name", sorted(scenario.EXPANSION_CASES))
async def test_expansion_matches_postfix(
    listeners: dict[str, tuple[Resolver, SmtpdChecks]], name: str
) -> None:
    recorded = RECORDED["expansion"][name]
    resolver = listeners["default"][0]
    recipients = scenario.EXPANSION_CASES[name]
    for address, expected in zip(recipients, recorded["rcpt"], strict=True):
        assert await judge(listeners["default"], address, "203.0.113.9") == expected
    end = recorded["end_of_data"]
    if end.startswith("451"):
        with pytest.raises(AliasExpansionError) as failure:
            await resolver.expand_all(recipients)
        assert str(failure.value.reply) == end
        return
    assert end.startswith("250 2.0.0 Ok: queued as ")
    records = await resolver.expand_all(recipients)
    # Postfix logs orig_to= only when it differs from to= ignoring case, so the
    # recorded original is compared without case; the final address exactly.
    got = sorted([r.original.lower(), r.final] for r in records)
    assert got == sorted([orig.lower(), final] for orig, final in recorded["delivered"])


async def test_loop_log_text_matches_postfix(resolvers: dict[str, Resolver]) -> None:
    # maillog of the recording: "warning: QID: unreasonable virtual_alias_maps map
    # nesting for loop1@hosted.example -- message not accepted, try again later"
    with pytest.raises(AliasExpansionError) as failure:
        await resolvers["default"].expand("loop1@hosted.example")
    assert failure.value.log_text == (
        "unreasonable virtual_alias_maps map nesting for loop1@hosted.example"
        " -- message not accepted, try again later"
    )
