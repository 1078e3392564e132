"""What cleanup does at the queue write with the actions gathered for one
message — by smtpd's access(5) maps (``Message.actions``) and by cleanup's
own header/body checks (:mod:`mailhost.cleanup.inspect`) — in Postfix's
terms (cleanup's flags and its FILT/RDR envelope records):

* ``DISCARD``: nothing is queued, the client gets 250 (the caller);
* ``HOLD``: the queue file is written into ``hold`` (``mailq`` shows ``!``,
  ``postsuper -H`` releases it) and the queue manager is not told;
* ``REDIRECT addr``: recorded in the queue file; the queue manager sends the
  message to that address instead of the recipients
  (:mod:`mailhost.qmgr.routing`);
* ``FILTER transport:destination`` (the last one), else main.cf
  ``content_filter``: recorded in the queue file; the queue manager sends
  every recipient through that transport and nexthop;
* ``BCC addr``: one more recipient (the caller expands it like the others);
* ``PREPEND header``: header lines above the content (the caller).

A message with any of HOLD, REDIRECT or FILTER is never delivered inline.
Pure functions; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import replace

from mailhost.cleanup.seams import MessageActions, Submission


def copy_actions(actions: MessageActions) -> MessageActions:
    """A copy the checks may add to (the caller's value stays as it was)."""
    out = MessageActions()
    out.merge(actions)
    return out


def prepended(actions: MessageActions) -> list[bytes]:
    """The PREPEND header lines, as content lines."""
    return [line.encode("utf-8", "surrogateescape") for line in actions.prepend]


def route(submission: Submission, actions: MessageActions, content_filter: str) -> Submission:
    """The submission with the actions that travel in the queue file (the
    same one when they change nothing, as for most mail)."""
    hold = actions.hold is not None
    content_filter = actions.filter or content_filter
    redirect = actions.redirect or ""
    if (hold, content_filter, redirect) == (
        submission.hold,
        submission.content_filter,
        submission.redirect,
    ):
        return submission
    return replace(submission, hold=hold, content_filter=content_filter, redirect=redirect)


def may_deliver_inline(submission: Submission) -> bool:
    """Inline delivery is for plain mail: not held, filtered or redirected."""
    return not (submission.hold or submission.content_filter or submission.redirect)
