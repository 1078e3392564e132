"""The queue manager's reading of a queue file's REDIRECT and content filter
(mailhost.qmgr.routing), and what cleanup puts there (mailhost.cleanup.actions)."""

from __future__ import annotations

from mailhost.cleanup.actions import copy_actions, may_deliver_inline, prepended, route
from mailhost.cleanup.seams import ClientInfo, FinalRecipient, MessageActions, Submission
from mailhost.qmgr.routing import filtered, routed_recipients
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.resolve.transport_maps import Route

RCPTS = (Recipient("alice@example.com", "alice@example.com"), Recipient("bob@example.com"))


def envelope(**fields: str) -> Envelope:
    return Envelope("s@client.test", RCPTS, 0.0, **fields)  # type: ignore[arg-type]


def test_without_redirect_every_pending_recipient_goes() -> None:
    assert routed_recipients(envelope(), [1, 0]) == [(1, RCPTS[1]), (0, RCPTS[0])]


def test_redirect_sends_once_on_behalf_of_the_first_recipient() -> None:
    (only,) = routed_recipients(envelope(redirect="carol@example.com"), [0, 1])
    assert only == (0, Recipient("carol@example.com", "alice@example.com"))


def test_redirect_with_the_first_recipient_done_sends_nothing() -> None:
    assert routed_recipients(envelope(redirect="carol@example.com"), [1]) == []


def test_filter_replaces_transport_and_nexthop() -> None:
    own = Route("virtual", "example.com")
    assert filtered(envelope(), own) == own
    assert filtered(envelope(content_filter="smtp:[127.0.0.1]:10024"), own) == Route(
        "smtp", "[127.0.0.1]:10024"
    )


def test_redirect_overrides_the_filter() -> None:
    own = Route("virtual", "example.com")
    both = envelope(content_filter="smtp:[127.0.0.1]:10024", redirect="carol@example.com")
    assert filtered(both, own) == own


def test_filter_without_nexthop_keeps_the_recipients() -> None:
    own = Route("smtp", "example.org")
    assert filtered(envelope(content_filter="scan:"), own) == Route("scan", "example.org")


def submission() -> Submission:
    client = ClientInfo("localhost", "127.0.0.1", 25, "client.test", "ESMTP")
    return Submission("QID", "s@x", (FinalRecipient("a@x", "a@x"),), client, 0.0)


def test_actions_travel_in_the_submission() -> None:
    actions = MessageActions(hold="held", redirect="r@x", filter="smtp:[h]")
    done = route(submission(), actions, "scan:")
    assert (done.hold, done.redirect, done.content_filter) == (True, "r@x", "smtp:[h]")
    assert not may_deliver_inline(done)


def test_content_filter_is_the_default_filter() -> None:
    done = route(submission(), MessageActions(), "scan:[127.0.0.1]:10025")
    assert done.content_filter == "scan:[127.0.0.1]:10025"
    assert not may_deliver_inline(done)
    assert may_deliver_inline(route(submission(), MessageActions(), ""))


def test_copy_keeps_the_callers_actions_and_prepend_order() -> None:
    mine = MessageActions(prepend=["X-A: 1", "X-B: 2"], bcc=["b@x"])
    copy = copy_actions(mine)
    copy.bcc.append("c@x")
    assert mine.bcc == ["b@x"]
    assert prepended(copy) == [b"X-A: 1", b"X-B: 2"]
