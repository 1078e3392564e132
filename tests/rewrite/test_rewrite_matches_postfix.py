"""cleanup's rewriting and smtp_generic_maps compared with Postfix 3.7.11.

postfix_rewrite.json was recorded by record_postfix_rewrite.py from a real
Postfix with scenario.MAIN_CF: for each message the envelope and headers
cleanup queued (``postcat -q``) and what smtp(8) sent with smtp_generic_maps
(smtp-sink).  Here mailhost gets the same configuration and the same
messages: cleanup_rewrite, then virtual alias expansion, must queue the same
(original, final) recipients, sender and address headers; generic mapping of
Postfix's queued message must send what Postfix sent.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mailhost.config import Config, load_config
from mailhost.resolve.generic import GenericSettings, generic_envelope, generic_headers
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.resolve.rewrite import RewriteSettings, cleanup_rewrite
from mailhost.tables.registry import TableRegistry
from tests.rewrite.scenario import GENERIC, MAIN_CF, MESSAGES, TABLES

pytestmark = pytest.mark.postfix

RECORDED = json.loads((Path(__file__).parent / "postfix_rewrite.json").read_text())


def scenario_config(directory: Path) -> Config:
    for name, lines in TABLES.items():
        (directory / name).write_text("".join(f"{line}\n" for line in lines))
    (directory / "generic").write_text("".join(f"{line}\n" for line in GENERIC))
    (directory / "main.cf").write_text(
        MAIN_CF.format(dir=directory) + f"smtp_generic_maps = texthash:{directory}/generic\n"
    )
    return load_config(directory)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return scenario_config(tmp_path)


def message_lines(name: str) -> list[bytes]:
    headers = [*MESSAGES[name]["headers"], f"X-Case: {name}"]  # type: ignore[misc]
    return [h.encode() for h in "\r\n".join(headers).split("\r\n")] + [b"", b"body"]


def header_section(lines: list[bytes]) -> list[str]:
    """Headers as the recorder wrote them: continuation lines joined by \\n."""
    out: list[str] = []
    for raw in lines:
        line = raw.decode()
        if not line:
            break
        if line[:1] in (" ", "\t") and out:
            out[-1] += "\n" + line
        else:
            out.append(line)
    return out


async def queue_like_cleanup(cfg: Config, name: str) -> dict[str, object]:
    registry = TableRegistry.from_config(cfg)
    case = MESSAGES[name]
    recipients = list(case["recipients"])  # type: ignore[call-overload]
    done = await cleanup_rewrite(
        RewriteSettings.from_config(cfg, registry),
        str(case["sender"]),
        recipients,
        message_lines(name),
        queue_id="TESTQID",
        remote_headers=bool(case.get("remote")),
    )
    resolver = Resolver(ResolverSettings.from_config(cfg, registry))
    records = []
    for original, target in zip(recipients, done.recipients, strict=True):
        records += [[original, r.final] for r in await resolver.expand(target)]
    await registry.close()
    return {
        "sender": done.sender,
        "recipients": records,
        "headers": header_section(done.lines),
    }


@pytest.mark.parametrize("name", sorted(MESSAGES))
async def test_cleanup_rewrite_matches_postfix(config: Config, name: str) -> None:
    expected = RECORDED[name]["queued"]
    got = await queue_like_cleanup(config, name)
    assert got["sender"] == expected["sender"]
    assert sorted(got["recipients"]) == sorted(expected["recipients"])  # type: ignore[type-var]
    # Headers cleanup adds (Message-Id, Date, Resent-From...) come after the
    # message's own, which end with X-Case; mailhost's smtpd adds none.
    end = [h.startswith("X-Case:") for h in expected["headers"]].index(True) + 1
    assert got["headers"] == expected["headers"][:end]


async def test_multi_valued_and_nesting_warnings_match_postfix(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mailhost"):
        await queue_like_cleanup(config, "multi_and_loop")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = ["TESTQID: " + w for w in RECORDED["multi_and_loop"]["warnings"]]
    assert sorted(warnings) == sorted(expected)


@pytest.mark.parametrize("name", sorted(MESSAGES))
async def test_smtp_generic_maps_matches_postfix(config: Config, name: str) -> None:
    """Postfix's queued message through mailhost's generic mapping gives
    what Postfix's smtp(8) sent."""
    queued = RECORDED[name]["queued"]
    (sent,) = RECORDED[name]["sent"]
    registry = TableRegistry.from_config(config)
    settings = GenericSettings.from_config(config, registry)
    sender, recipients = await generic_envelope(
        settings, queued["sender"], [final for _orig, final in queued["recipients"]]
    )
    lines = [part.encode() for h in queued["headers"] for part in h.split("\n")]
    headers = header_section(await generic_headers(settings, [*lines, b"", b"body"]))
    await registry.close()
    assert sender == sent["sender"]
    assert sorted(recipients) == sent["recipients"]
    assert headers == sent["headers"]
