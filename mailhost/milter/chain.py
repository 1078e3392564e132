"""Several milters in the order configured, as Postfix's milter.c runs them.

Each event goes to one milter after the other until one answers with a
decision (reply, discard, hold, shutdown); the milters after it do not see
that event.  At end of message each milter's modifications are applied
before the next milter is sent the content, so a later milter sees (and
signs, for a DKIM signer) what the earlier ones left.
"""

from __future__ import annotations

from collections.abc import Mapping

from mailhost.milter.client import MilterClient
from mailhost.milter.edits import Content
from mailhost.milter.settings import MilterSettings
from mailhost.milter.verdict import Edit, Verdict

Values = Mapping[str, str | None]


class MilterChain:
    """The milters of one SMTP session or one local submission."""

    def __init__(self, settings: MilterSettings) -> None:
        self.settings = settings
        self.milters = [MilterClient(spec, settings) for spec in settings.milters]

    async def connect(self, name: str, address: str, port: int, values: Values) -> Verdict | None:
        for milter in self.milters:
            verdict = await milter.connect(name, address, port, values)
            if verdict is not None:
                return verdict
        return None

    async def helo(self, name: str, values: Values) -> Verdict | None:
        for milter in self.milters:
            verdict = await milter.helo(name, values)
            if verdict is not None:
                return verdict
        return None

    async def mail(self, args: list[str], values: Values) -> Verdict | None:
        for milter in self.milters:
            verdict = await milter.mail(args, values)
            if verdict is not None:
                return verdict
        return None

    async def rcpt(
        self, args: list[str], values: Values, *, rejected: bool = False
    ) -> Verdict | None:
        """A recipient; with ``rejected`` (smtpd already refused it) only the
        milters that asked for rejected recipients (SMFIP_RCPT_REJ) see it,
        and their answer does not matter."""
        for milter in self.milters:
            if rejected and not milter.wants_rejected_recipients:
                continue
            verdict = await milter.rcpt(args, values)
            if verdict is not None and not rejected:
                return verdict
        return None

    async def data(self, values: Values) -> Verdict | None:
        for milter in self.milters:
            verdict = await milter.data(values)
            if verdict is not None:
                return verdict
        return None

    async def message(self, content: Content, values: Values) -> Verdict | None:
        """Header, body and end of message to each milter; modifications
        are applied to ``content``."""
        for milter in self.milters:
            edits: list[Edit] = []
            verdict = await milter.message(content.visible_headers(), content.body, values, edits)
            checks = content.header_checks
            for edit in edits:
                checked = edit if checks is None else await checks.checked(edit)
                if checks is not None and checks.stopped:
                    # A REJECT or DISCARD of milter_header_checks ends the
                    # modifications and the milters' say.
                    return None
                if checked is not None:
                    content.apply(checked)
            if verdict is not None:
                return verdict
        return None

    def other(self) -> Verdict | None:
        """The standing answer for commands with no event of their own
        (VRFY, STARTTLS): Postfix milter_other_event."""
        for milter in self.milters:
            if milter.standing is not None:
                return milter.standing
        return None

    async def abort(self) -> None:
        for milter in self.milters:
            await milter.abort()

    async def quit(self) -> None:
        for milter in self.milters:
            await milter.quit()
