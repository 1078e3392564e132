"""Where the queue manager sends a message's recipients when the queue file
carries a REDIRECT or a content filter (cleanup's FILTER/REDIRECT actions,
smtpd's access actions, main.cf ``content_filter``).

Postfix's qmgr(8), in qmgr_message_resolve():

* REDIRECT: the message goes once, to the redirect address, on behalf of
  the first recipient (logged ``to=<redirect>, orig_to=<first>``); the
  other recipients are dropped without a log line;
* FILTER ``transport:nexthop`` (ignored when there is a REDIRECT): every recipient is handed to that
  transport and nexthop instead of its own route (an empty nexthop keeps
  the recipient's own, Postfix 2.7 and later) — the content filter gets
  the message and reinjects it, normally on a listener with
  ``-o content_filter=`` so it is not filtered twice.

Pure functions; the manager does the routing (:mod:`mailhost.qmgr.manager`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from mailhost.queue.qfile import Envelope, Recipient
from mailhost.resolve.transport_maps import Route, parse_route


def routed_recipients(envelope: Envelope, pending: Iterable[int]) -> list[tuple[int, Recipient]]:
    """The recipients to deliver now: the pending ones, or with a REDIRECT
    the first recipient (when pending) readdressed."""
    recipients = envelope.recipients
    if not envelope.redirect:
        return [(index, recipients[index]) for index in pending]
    if 0 not in set(pending):
        return []
    first = recipients[0]
    return [
        (0, replace(first, address=envelope.redirect, original=first.original or first.address))
    ]


def filtered(envelope: Envelope, route: Route) -> Route:
    """``route`` overridden by the message's content filter, if any (a
    REDIRECT overrides the filter: recorded from Postfix 3.7.11 with
    main.cf content_filter set)."""
    if not envelope.content_filter or envelope.redirect:
        return route
    target = parse_route(envelope.content_filter)
    return Route(target.transport or route.transport, target.nexthop or route.nexthop)
