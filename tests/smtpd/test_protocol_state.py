"""SmtpdProtocol sets up aiosmtpd's connection state itself (without the
per-connection tables of ``SMTP.__init__``) and keeps one idle timer per
connection: both must behave as aiosmtpd's own code would."""

from __future__ import annotations

import asyncio
import time

from aiosmtpd.smtp import SMTP

from mailhost.smtpd.protocol import SmtpdProtocol
from tests.smtpd.test_protocol_inprocess import Client, connect, handler, settings

__all__ = ["connect"]  # the fixture

#: Attributes of SmtpdProtocol's own (not aiosmtpd's).
OURS = {
    "mh", "settings", "service", "wrapped", "gate", "on_close", "state", "closing_reason",
    "shutting_down", "idle", "pipelining_logged", "_counted", "starttls_context",
    "_idle_deadline", "_idle_armed",
}  # fmt: skip


class _Hooks:
    pass


async def test_the_state_has_every_attribute_aiosmtpd_sets_up() -> None:
    loop = asyncio.get_running_loop()
    theirs = set(vars(SMTP(_Hooks(), hostname="mx.example.com", loop=loop)))
    ours = set(vars(SmtpdProtocol(handler(settings()), service="test", loop=loop)))
    assert ours - OURS == theirs


async def test_activity_moves_the_idle_deadline_and_idleness_still_times_out(connect) -> None:  # type: ignore[no-untyped-def]
    client: Client = await connect(handler(settings(smtpd_timeout="1s")))
    await asyncio.sleep(0.6)
    assert (await client.cmd("NOOP")).startswith("250 ")
    await asyncio.sleep(0.6)  # 1.2 s after the greeting, 0.6 s after NOOP
    assert (await client.cmd("NOOP")).startswith("250 ")
    quiet = time.monotonic()
    assert (await client.reply()) == "421 4.4.2 mx.example.com Error: timeout exceeded"
    assert 0.9 <= time.monotonic() - quiet < 2.0
