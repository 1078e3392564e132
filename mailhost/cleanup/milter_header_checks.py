"""milter_header_checks: the headers a milter adds, inserts or changes at
end of message go through these tables before they are applied (Postfix's
cleanup_milter.c), with header_checks(5) actions as cleanup's own
inspection applies them (:func:`mailhost.cleanup.inspect.act`), but:

* REJECT, DISCARD, HOLD, REDIRECT, FILTER and BCC act only until a REJECT,
  DISCARD or REDIRECT; after that they change nothing and log nothing;
* REJECT and DISCARD also end the milters' modifications (the later ones
  are not applied and the later milters are not asked);
* PREPEND is logged, then refused with a warning (the header is kept);
  PASS and unknown words are warned about as unsupported;
* log lines say ``milter-header-ACTION`` and show 60 characters of the
  header (Postfix ``%.60s``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mailhost.cleanup.inspect import Inspected, LogContext, Run, act, split_action
from mailhost.errors import TableTempFail
from mailhost.log import daemon_logger
from mailhost.milter.verdict import AddHeader, ChangeHeader, Edit, InsertHeader
from mailhost.reply import QUEUE_WRITE_ERROR
from mailhost.tables.maps import Maps

log = daemon_logger("cleanup")

PARAMETER = "milter_header_checks"
#: Postfix's ``%.60s`` of the header in the log line.
LOG_CONTENT_LIMIT = 60
#: Actions cleanup adds to the generic ones (cleanup_milter_hbc_extend).
_EXTENDED = frozenset({"BCC", "REJECT", "FILTER", "DISCARD", "HOLD", "REDIRECT"})
_GENERIC = frozenset({"WARN", "INFO", "REPLACE", "PREPEND", "STRIP", "IGNORE", "DUNNO", "OK"})


@dataclass
class HeaderCheckRun:
    """One message's milter_header_checks: the tables and what the actions
    decided so far (``result.actions``, ``result.reject``)."""

    maps: Maps
    queue_id: str
    context: LogContext
    result: Inspected = field(default_factory=lambda: Inspected([]))

    def __post_init__(self) -> None:
        self.run = Run(
            self.queue_id,
            self.context,
            self.result,
            action_prefix="milter-header-",
            content_limit=LOG_CONTENT_LIMIT,
        )

    @property
    def stopped(self) -> bool:
        """A REJECT, DISCARD or table failure ends the modifications."""
        return self.result.reject is not None or self.result.actions.discard is not None

    async def check(self, name: str, value: str) -> str | None:
        """The header text ``name:value`` to apply (maybe replaced), or
        None when it is dropped or the modifications end."""
        text = f"{name}:{value}"
        try:
            answer = await self.maps.lookup(text)
        except TableTempFail:
            log.warning(
                "%s: %s map lookup problem -- message not accepted, try again later",
                self.queue_id,
                PARAMETER,
            )
            self.result.reject = QUEUE_WRITE_ERROR
            return None
        if answer is None:
            return text
        word = split_action(answer)[0].upper()
        if word in _EXTENDED and not self.run.filtering:
            return text
        if word not in _EXTENDED and word not in _GENERIC:
            log.warning("unsupported command in %s map: %s", PARAMETER, split_action(answer)[0])
            return text
        content = text.encode("utf-8", "surrogateescape")
        action = act(self.run, "header", content, answer, PARAMETER)
        for line in self.result.header_log:
            log.info("%s", line)
        self.result.header_log.clear()
        if action.prepend is not None:
            log.warning("the milter_header/body_checks prepend action is not implemented")
        if self.stopped or action.drop:
            return None
        if action.replace is not None:
            return action.replace.decode("utf-8", "surrogateescape")
        return text

    async def checked(self, edit: Edit) -> Edit | None:
        """``edit`` as milter_header_checks leave it: a header edit with
        its header maybe replaced, or None when the header is dropped;
        other edits (and a header deletion) as they are."""
        if isinstance(edit, ChangeHeader) and not edit.value:
            return edit
        if not isinstance(edit, (AddHeader, InsertHeader, ChangeHeader)):
            return edit
        text = await self.check(edit.name, edit.value)
        if text is None:
            return None
        name, _, value = text.partition(":")
        if isinstance(edit, AddHeader):
            return AddHeader(name, value)
        return replace(edit, name=name, value=value)
