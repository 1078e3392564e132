"""Content inspection in cleanup: header_checks, mime_header_checks,
nested_header_checks and body_checks (Postfix header_checks(5)).

Where this sits: :class:`mailhost.cleanup.service.Cleanup` (SMTP mail) and
:class:`~mailhost.cleanup.local.LocalCleanup` (pickup) call
:meth:`ContentChecks.inspect` on the message content before the queue
write.  The message goes line by line through Postfix's MIME structure
(:mod:`mailhost.cleanup.mime`); each logical header is looked up, as one
string with its folding newlines, in the tables its kind names, each body
record in body_checks while its offset in the body segment is below
body_checks_size_limit.  The first table answer is an action
(:func:`act`), as Postfix 3.7's cleanup applies it:

* ``REJECT [text]``: the message is refused (``550``, or ``451`` when the
  text starts with a 4.x.x code); nothing more is inspected;
* ``DISCARD``: accepted with 250 and not queued; nothing more is inspected;
* ``HOLD``: queued in ``hold`` (the first HOLD counts);
* ``REDIRECT user@domain``: every recipient replaced; nothing more is
  inspected;
* ``FILTER transport:destination``: the content filter (the last counts);
* ``BCC user@domain``: one more recipient;
* ``PREPEND text`` (a line above the matched one), ``REPLACE text``,
  ``IGNORE``, ``STRIP`` (drop it, logged), ``WARN``, ``INFO``, ``PASS``
  (stop inspecting), ``DUNNO`` and ``OK`` (nothing).

The log lines are Postfix's: ``QID: ACTION: header|body CONTENT from
ORIGIN; from=<SENDER> to=<RCPT> proto=P helo=<H>: TEXT`` (content cut at
200 bytes, non-printable characters shown as ``?``).  They are returned in
two lists, before and after the end of the primary header, because Postfix
logs ``message-id=`` between the two.  A table that fails makes the
message fail temporarily (``451 4.3.0``), never a 5xx.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from mailhost.cleanup.inspect_output import InspectedOutput, chain_lines, each_line
from mailhost.cleanup.mime import Body, Header, HeaderEnd, HeaderKind, MimeState, is_header
from mailhost.cleanup.seams import MessageActions
from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.errors import TableTempFail
from mailhost.log import daemon_logger
from mailhost.queue.spool import HEADER_SIZE_LIMIT, Content
from mailhost.queue.spool import Body as SpoolBody
from mailhost.reply import QUEUE_WRITE_ERROR, Reply
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

log = daemon_logger("cleanup")

#: What REJECT without text says (Postfix's CLEANUP_STAT_CONT detail).
CONTENT_REJECTED = "5.7.1 message content rejected"
#: How much of the matched content a log line shows (Postfix ``%.200s``).
LOG_CONTENT_LIMIT = 200

_DSN = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?=[ \t]|$)")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class LogContext:
    """Who sent the message, as the action log lines name it."""

    #: ``host[address]`` for SMTP mail, ``local`` for pickup.
    origin: str
    sender: str
    #: the last recipient given (Postfix logs that one).
    recipient: str | None = None
    protocol: str | None = None
    helo: str | None = None


@dataclass
class Inspected:
    """The outcome of inspecting one message."""

    lines: list[bytes]
    actions: MessageActions = field(default_factory=MessageActions)
    #: the refusal (REJECT, or a table failure); None when accepted.
    reject: Reply | None = None
    #: the action lines logged before / after the primary header's end.
    header_log: list[str] = field(default_factory=list)
    body_log: list[str] = field(default_factory=list)
    #: the primary header ended while the message was still being kept
    #: (Postfix logs ``message-id=`` then); False after a REJECT or DISCARD
    #: in the header.
    header_end: bool = False


def dsn_reason(text: str) -> tuple[str, bool]:
    """The reply text of ``REJECT text`` (``5.7.1`` put in front unless it
    starts with a code) and whether it is temporary; a code that is not
    4.x.x or 5.x.x becomes 4.x.x with a warning, as in Postfix."""
    if not text:
        return CONTENT_REJECTED, False
    reason = text if _DSN.match(text) else f"5.7.1 {text}"
    if reason[0] not in "45":
        log.warning("bad DSN action in %s -- need 4.x.x or 5.x.x", text)
        reason = "4" + reason[1:]
    return reason, reason[0] == "4"


def reject_reply(reason: str, temporary: bool) -> Reply:
    code, _, text = reason.partition(" ")
    return Reply(451 if temporary else 550, code, text)


def printable(text: str) -> str:
    """Control characters as ``?``, as Postfix's logging shows them."""
    return _UNPRINTABLE.sub("?", text)


@dataclass
class Run:
    """One message's inspection in progress (also milter_header_checks',
    :mod:`mailhost.cleanup.milter_header_checks`, with its own log prefix and limit)."""

    queue_id: str
    context: LogContext
    result: Inspected
    #: checks are still applied (REJECT, DISCARD, REDIRECT and PASS stop them).
    filtering: bool = True
    in_body: bool = False
    #: the parameter of the tables being searched (for a failure's warning).
    searching: str = ""
    #: put before the action word in log lines (``milter-header-``).
    action_prefix: str = ""
    #: how much of the matched content a log line shows.
    content_limit: int = LOG_CONTENT_LIMIT

    def log_action(self, action: str, where: str, content: bytes, text: str) -> None:
        ctx = self.context
        shown = content[: self.content_limit].decode("utf-8", "replace")
        line = f"{self.queue_id}: {self.action_prefix}{action}: {where} {shown} from {ctx.origin};"
        line += f" from=<{ctx.sender}>"
        if ctx.recipient is not None:
            line += f" to=<{ctx.recipient}>"
        if ctx.protocol:
            line += f" proto={ctx.protocol}"
        if ctx.helo:
            line += f" helo=<{ctx.helo}>"
        if text:
            line += f": {text}"
        out = self.result.body_log if self.in_body else self.result.header_log
        out.append(printable(line))

    @property
    def kept(self) -> bool:
        return self.result.reject is None and self.result.actions.discard is None


@dataclass(frozen=True)
class Action:
    """What one table answer does to the line it matched."""

    #: the line's replacement (None: unchanged); ``b""`` never occurs.
    replace: bytes | None = None
    #: drop the line (IGNORE, STRIP).
    drop: bool = False
    #: a line to put before it (PREPEND).
    prepend: bytes | None = None


def act(run: Run, where: str, content: bytes, value: str, map_class: str) -> Action:
    """Apply one action (Postfix cleanup_act) and log it."""
    command, text = split_action(value)
    word = command.upper()
    handler = _ACTIONS.get(word)
    if handler is not None:
        return handler(run, _Match(word, where, content, text, map_class))
    if word not in ("DUNNO", "OK"):
        log.warning("unknown command in %s map: %s", map_class, value)
    return Action()


def split_action(value: str) -> tuple[str, str]:
    """The action word and its text (blanks after the word skipped)."""
    end = len(value)
    for index, char in enumerate(value):
        if char in " \t":
            end = index
            break
    return value[:end], value[end:].lstrip(" \t")


@dataclass(frozen=True)
class _Match:
    """One table answer: its action word and text, and what it matched."""

    word: str
    where: str
    content: bytes
    text: str
    map_class: str


def _reject(run: Run, m: _Match) -> Action:
    reason, temporary = dsn_reason(m.text)
    run.result.reject = reject_reply(reason, temporary)
    run.filtering = False
    run.log_action("reject", m.where, m.content, reason)
    return Action()


def _log_only(run: Run, m: _Match) -> Action:
    """WARN, INFO; PASS also stops the inspection."""
    run.log_action({"WARN": "warning"}.get(m.word, m.word.lower()), m.where, m.content, m.text)
    if m.word == "PASS":
        run.filtering = False
    return Action()


def _strip(run: Run, m: _Match) -> Action:
    run.log_action("strip", m.where, m.content, m.text)
    return Action(drop=True)


def _ignore(run: Run, m: _Match) -> Action:
    return Action(drop=True)


def _filter(run: Run, m: _Match) -> Action:
    if not m.text:
        log.warning("missing FILTER command argument in %s map", m.map_class)
    elif ":" not in m.text:
        log.warning(
            "bad FILTER command %s in %s -- need transport:destination", m.text, m.map_class
        )
    else:
        run.result.actions.filter = m.text
        run.log_action("filter", m.where, m.content, m.text)
    return Action()


def _discard(run: Run, m: _Match) -> Action:
    run.log_action("discard", m.where, m.content, m.text)
    run.result.actions.discard = m.text or "discarded"
    run.filtering = False
    return Action()


def _hold(run: Run, m: _Match) -> Action:
    actions = run.result.actions
    if actions.hold is None and actions.discard is None:
        run.log_action("hold", m.where, m.content, m.text)
        actions.hold = m.text or "held"
    return Action()


def _address(run: Run, m: _Match) -> Action:
    """REDIRECT (also stops the inspection) and BCC."""
    actions = run.result.actions
    if "@" not in m.text:
        what = "target" if m.word == "REDIRECT" else "address"
        log.warning(
            'bad %s %s "%s" in %s map -- need user@domain', m.word, what, m.text, m.map_class
        )
    elif m.word == "REDIRECT":
        actions.redirect = m.text
        run.log_action("redirect", m.where, m.content, m.text)
        run.filtering = False
    else:
        if m.text not in actions.bcc:
            actions.bcc.append(m.text)
        run.log_action("bcc", m.where, m.content, m.text)
    return Action()


def _edit(run: Run, m: _Match) -> Action:
    """PREPEND and REPLACE: a header's text must be a header."""
    if not m.text:
        log.warning("%s action without text in %s map", m.word, m.map_class)
        return Action()
    if m.where == "header" and not is_header(m.text):
        log.warning(
            'bad %s header text "%s" in %s map -- need "headername: headervalue"',
            m.word,
            m.text,
            m.map_class,
        )
        return Action()
    run.log_action(m.word.lower(), m.where, m.content, m.text)
    encoded = m.text.encode("utf-8", "surrogateescape")
    return Action(prepend=encoded) if m.word == "PREPEND" else Action(replace=encoded)


_ACTIONS: dict[str, Callable[[Run, _Match], Action]] = {
    "REJECT": _reject,
    "WARN": _log_only,
    "INFO": _log_only,
    "PASS": _log_only,
    "STRIP": _strip,
    "IGNORE": _ignore,
    "FILTER": _filter,
    "DISCARD": _discard,
    "HOLD": _hold,
    "REDIRECT": _address,
    "BCC": _address,
    "PREPEND": _edit,
    "REPLACE": _edit,
}


@dataclass(frozen=True)
class ContentChecks:
    """The check tables of one cleanup configuration."""

    header_checks: Maps
    mime_header_checks: Maps
    nested_header_checks: Maps
    body_checks: Maps
    body_checks_size_limit: int = 51200
    mime: bool = True
    line_length_limit: int = 2048
    header_size_limit: int = HEADER_SIZE_LIMIT

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry) -> ContentChecks:
        """The tables of main.cf (and a listener's ``-o`` overrides); none
        with ``receive_override_options = no_header_body_checks`` (what a
        content filter's reinjection listener sets)."""
        off = "no_header_body_checks" in split_list(cfg.get("receive_override_options"))

        def maps(name: str) -> Maps:
            return Maps(name, []) if off else Maps.from_value(name, cfg.get(name), registry)

        return cls(
            maps("header_checks"),
            maps("mime_header_checks"),
            maps("nested_header_checks"),
            maps("body_checks"),
            body_checks_size_limit=cfg.get_int("body_checks_size_limit"),
            mime=not cfg.get_bool("disable_mime_input_processing"),
            line_length_limit=cfg.get_int("line_length_limit"),
            header_size_limit=cfg.get_int("header_size_limit"),
        )

    @property
    def active(self) -> bool:
        """True when any check table is configured."""
        return any(
            (self.header_checks, self.mime_header_checks, self.nested_header_checks)
        ) or bool(self.body_checks)

    def _header_maps(self, kind: HeaderKind) -> Maps:
        if kind is HeaderKind.PRIMARY:
            return self.header_checks
        if kind is HeaderKind.MIME:
            return self.mime_header_checks
        return self.nested_header_checks

    async def inspect(
        self, queue_id: str, lines: list[bytes], context: LogContext, *, keep_all: bool = False
    ) -> Inspected:
        """Inspect ``lines`` (the whole content, header first).  ``keep_all``
        (local submissions, which Postfix bounces rather than refuses)
        reports the primary header's end even after a REJECT."""
        run = Run(queue_id, context, Inspected([]))
        out = run.result.lines
        await self._inspect(run, each_line(lines), InspectedOutput(out, None, 0), keep_all)
        return run.result

    async def inspect_content(
        self, queue_id: str, content: Content, context: LogContext
    ) -> tuple[Inspected, Content]:
        """:meth:`inspect` of a message whose body is spooled: the header
        section is inspected in memory, the body as it is read back, and
        the result's body goes to a new spool (discarding it is the
        caller's).  ``Inspected.lines`` then holds the header section only.

        Without body_checks, a body that starts with the empty line after
        a header that opens no MIME structure (no multipart, not
        message/rfc822) can only come out as it went in: it is not read
        back at all, and the result shares ``content``'s body (the caller
        then has no copy to discard)."""
        run = Run(queue_id, context, Inspected([]))
        source = content.body
        body = SpoolBody(
            source.directory,
            line_length_limit=source.line_length_limit,
            buffer_size=source.buffer_size,
        )
        output = InspectedOutput(run.result.lines, body, self.header_size_limit)
        walk = _Walk(self, run, output, keep_all=False)
        try:
            if not self.body_checks and await source.starts_with_empty_line():
                # The header, then the body's first (empty) line, which ends it.
                if await walk.feed(chain_lines(content.header, each_line([b""]))):
                    # Nothing but that line went to the new body, and the
                    # rest of the source can only follow it as it is.
                    if (
                        walk.plain_body()
                        and not output.staged
                        and body.count == 1
                        and body.length == 1
                    ):
                        body.discard()
                        return run.result, Content(run.result.lines, source)
                    rest = _after_first(source.alines())
                    if await walk.feed(rest):
                        await walk.finish()
            elif await walk.feed(chain_lines(content.header, source.alines())):
                await walk.finish()
            await walk.close()
            await body.finish()
        except BaseException:
            body.discard()
            raise
        return run.result, Content(run.result.lines, body)

    async def _inspect(
        self, run: Run, lines: AsyncIterator[bytes], output: InspectedOutput, keep_all: bool
    ) -> None:
        walk = _Walk(self, run, output, keep_all)
        if await walk.feed(lines):
            await walk.finish()
        await walk.close()

    async def _event(
        self,
        run: Run,
        event: Header | Body | HeaderEnd,
        out: list[bytes],
        pending: list[bytes],
        keep_all: bool,
    ) -> None:
        if isinstance(event, HeaderEnd):
            run.in_body = True
            run.result.header_end = run.kept or keep_all
            return
        if isinstance(event, Header):
            await self._header(run, event, out)
            return
        data = event.data
        if (
            run.filtering
            and self.body_checks
            and (self.body_checks_size_limit == 0 or event.offset < self.body_checks_size_limit)
        ):
            key = data.decode("utf-8", "surrogateescape")
            run.searching = self.body_checks.parameter
            value = await self.body_checks.lookup(key)
            if value is not None:
                action = act(run, "body", data, value, "body_checks")
                if action.prepend is not None:
                    out.append(action.prepend)
                if action.drop:
                    data = b""
                    if event.line_end and pending:
                        out.append(b"".join(pending))
                        pending.clear()
                    return
                if action.replace is not None:
                    data = action.replace
        pending.append(data)
        if event.line_end:
            out.append(b"".join(pending))
            pending.clear()

    async def _header(self, run: Run, header: Header, out: list[bytes]) -> None:
        maps = self._header_maps(header.kind)
        if run.filtering and maps:
            key = header.text.decode("utf-8", "surrogateescape")
            run.searching = maps.parameter
            value = await maps.lookup(key)
            if value is not None:
                action = act(run, "header", header.text, value, maps.parameter)
                if action.prepend is not None:
                    out.append(action.prepend)
                if action.drop:
                    return
                if action.replace is not None:
                    out.extend(action.replace.split(b"\n"))
                    return
        out.extend(header.lines)


async def _after_first(lines: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``lines`` without its first line."""
    first = True
    async for line in lines:
        if first:
            first = False
            continue
        yield line


class _Walk:
    """One inspection's walk through the message, which may be fed in
    pieces: the MIME state, the body record being joined, where the lines
    go.  A table failure ends it (the message is refused with 451)."""

    def __init__(
        self, checks: ContentChecks, run: Run, output: InspectedOutput, keep_all: bool
    ) -> None:
        self.checks = checks
        self.run = run
        self.output = output
        self.keep_all = keep_all
        self.state = MimeState(mime=checks.mime, line_length_limit=checks.line_length_limit)
        self.pending: list[bytes] = []

    async def feed(self, lines: AsyncIterator[bytes]) -> bool:
        """Inspect ``lines``; False once a table failed (stop there)."""
        run, output, state = self.run, self.output, self.state
        event_of = self.checks._event
        try:
            async for line in lines:
                for event in state.feed(line):
                    await event_of(
                        run, event, output.target(run.in_body), self.pending, self.keep_all
                    )
                await output.flush()
        except TableTempFail:
            self._failed()
            return False
        return True

    async def finish(self) -> None:
        """The end of the message: what the MIME state still holds."""
        run, output = self.run, self.output
        try:
            for event in self.state.finish():
                await self.checks._event(
                    run, event, output.target(run.in_body), self.pending, self.keep_all
                )
        except TableTempFail:
            self._failed()

    async def close(self) -> None:
        """What is left of a body record goes out."""
        if self.pending:
            self.output.target(self.run.in_body).append(b"".join(self.pending))
            self.pending.clear()
        await self.output.flush()

    def plain_body(self) -> bool:
        """From here on every line is a body record of its own (no MIME
        boundary open, no header pending or to come), and a line not cut
        in pieces is complete."""
        return self.state.plain_body() and not self.pending

    def _failed(self) -> None:
        log.warning(
            "%s: %s map lookup problem -- message not accepted, try again later",
            self.run.queue_id,
            self.run.searching,
        )
        self.run.result.reject = QUEUE_WRITE_ERROR
