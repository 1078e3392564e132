"""non_smtpd_milters: the milters of mail from ``sendmail`` (pickup), as
Postfix's cleanup runs them (cleanup_milter.c).

cleanup pretends the message came over ESMTP from localhost[127.0.0.1]:
connect, HELO ``localhost``, MAIL with the sender (no angle brackets), one
RCPT per recipient, DATA, then the content (cleanup's own ``Received:``
header is not shown) and the end of message.  Each answer is logged by
cleanup (``QID: milter-reject: MAIL from localhost[127.0.0.1]: 5.7.1
Command rejected; from=<...>``, ``to=<...>`` once recipients are known)
and means, as recorded from Postfix 3.7.11:

* 5xx: the message is bounced to its sender (nobody waits for a reply);
* 4xx: the maildrop file waits for the next pickup scan;
* a refused recipient: a milter configuration error, the file waits too
  (``4.3.5 Server configuration error``);
* discard, quarantine: the message is dropped, or held;
* modifications: applied as for SMTP mail.

No event is sent after a refusal or a discard.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.address import external_form
from mailhost.cleanup.inspect import LogContext
from mailhost.cleanup.milter_header_checks import HeaderCheckRun
from mailhost.errors import MailhostError
from mailhost.log import daemon_logger
from mailhost.milter.chain import MilterChain
from mailhost.milter.edits import Content
from mailhost.milter.settings import MilterSettings
from mailhost.milter.verdict import DISCARD_TEXT, HOLD_TEXT, Kind, Verdict, printable

cleanup_log = daemon_logger("cleanup")

CLIENT_NAME = "localhost"
CLIENT_ADDRESS = "127.0.0.1"


class MilterDeferred(MailhostError):
    """A milter answered 4xx (or refused a recipient): the maildrop file
    waits for the next scan; cleanup has logged why."""


@dataclass
class LocalOutcome:
    """What the milters decided about one local submission."""

    content: Content
    #: ``(dsn, text)`` of a 5xx refusal: the message is bounced.
    bounce: tuple[str, str] | None = None
    discard: bool = False
    hold: bool = False


class LocalMilters:
    """non_smtpd_milters for one message (see the module docstring)."""

    def __init__(self, settings: MilterSettings, queue_id: str) -> None:
        self.settings = settings
        self.queue_id = queue_id
        self.chain = MilterChain(settings)

    async def run(self, content: Content) -> LocalOutcome:
        """All events; raises MilterDeferred for a temporary refusal."""
        outcome = LocalOutcome(content)
        try:
            await self.events(outcome)
        finally:
            await self.chain.quit()
        return outcome

    async def events(self, outcome: LocalOutcome) -> None:
        content = outcome.content
        sender = external_form(content.sender) if content.sender else ""
        values: dict[str, str | None] = {
            "j": self.settings.myhostname,
            "_": f"{CLIENT_NAME} [{CLIENT_ADDRESS}]",
            "daemon_name": self.settings.daemon_name,
            "daemon_addr": CLIENT_ADDRESS,
            "v": self.settings.macro_v,
            "client_addr": CLIENT_ADDRESS,
            "client_name": CLIENT_NAME,
            "i": self.queue_id,
            "mail_addr": sender,
        }
        recipient: str | None = None
        verdict = await self.chain.connect(CLIENT_NAME, CLIENT_ADDRESS, 0, values)
        if self.apply(outcome, "CONNECT", verdict, recipient):
            return
        verdict = await self.chain.helo(CLIENT_NAME, values)
        if self.apply(outcome, "EHLO", verdict, recipient):
            return
        verdict = await self.chain.mail([sender], values)
        if self.apply(outcome, "MAIL", verdict, recipient):
            return
        for address in list(content.recipients):
            recipient = external_form(address)
            values["rcpt_addr"] = recipient
            verdict = await self.chain.rcpt([recipient], values)
            if verdict is not None and verdict.kind == Kind.REPLY:
                self.log("milter-reject", "RCPT", verdict.text[4:], content.sender, recipient)
                cleanup_log.warning(
                    "%s: milter configuration error: can't reject recipient "
                    "in non-smtpd(8) submission",
                    self.queue_id,
                )
                cleanup_log.warning("%s: message not accepted, try again later", self.queue_id)
                raise MilterDeferred("4.3.5 Server configuration error")
            if self.apply(outcome, "RCPT", verdict, recipient):
                return
        verdict = await self.chain.data(values)
        if self.apply(outcome, "DATA", verdict, recipient):
            return
        checks = None
        if self.settings.header_checks is not None:
            context = LogContext(f"{CLIENT_NAME}[{CLIENT_ADDRESS}]", sender, recipient)
            checks = HeaderCheckRun(self.settings.header_checks, self.queue_id, context)
            content.header_checks = checks
        verdict = await self.chain.message(content, values)
        if checks is not None and self.checked(outcome, checks):
            return
        self.apply(outcome, "END-OF-MESSAGE", verdict, recipient)

    def checked(self, outcome: LocalOutcome, checks: HeaderCheckRun) -> bool:
        """What milter_header_checks decided (already logged); True when
        it refused or discarded the message."""
        found = checks.result
        if found.reject is not None:
            if found.reject.code < 500:
                raise MilterDeferred(str(found.reject))
            outcome.bounce = (found.reject.status, found.reject.text)
            return True
        actions = found.actions
        if actions.discard is not None:
            outcome.discard = True
            return True
        outcome.hold = outcome.hold or actions.hold is not None
        content = outcome.content
        if actions.redirect is not None:
            content.recipients = [actions.redirect]
        content.recipients.extend(a for a in actions.bcc if a not in content.recipients)
        return False

    def apply(
        self, outcome: LocalOutcome, event: str, verdict: Verdict | None, recipient: str | None
    ) -> bool:
        """cleanup_milter_apply: log and record one answer; True when no
        further event is to be sent."""
        sender = outcome.content.sender
        if verdict is None:
            return False
        if verdict.kind == Kind.HOLD:
            if not outcome.hold:
                outcome.hold = True
                self.log("milter-hold", event, HOLD_TEXT, sender, recipient)
            return False
        if verdict.kind == Kind.DISCARD:
            outcome.discard = True
            self.log("milter-discard", event, DISCARD_TEXT, sender, recipient)
            return True
        text = verdict.text
        if verdict.kind == Kind.SHUTDOWN:
            text = "421 4.7.0 Service unavailable"
        self.log("milter-reject", event, text[4:], sender, recipient)
        if text.startswith("4"):
            raise MilterDeferred(text)
        status, _, reason = text[4:].partition(" ")
        if not (status[:1] == "5" and status.count(".") == 2):
            status, reason = "5.7.1", text[4:]
        outcome.bounce = (status, reason)
        return True

    def log(self, action: str, event: str, text: str, sender: str, recipient: str | None) -> None:
        line = (
            f"{self.queue_id}: {action}: {event} from {CLIENT_NAME}[{CLIENT_ADDRESS}]: "
            f"{printable(text)}; from=<{external_form(sender)}>"
        )
        if recipient is not None:
            line += f" to=<{recipient}>"
        cleanup_log.info("%s", line)
