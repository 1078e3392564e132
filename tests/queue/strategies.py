"""Hypothesis strategies for queue envelopes and content."""

from __future__ import annotations

from hypothesis import strategies as st

from mailhost.queue.qfile import Client, Envelope, Recipient
from mailhost.queue.status import Expire, RecipientStatus, Schedule

#: Content lines that look like queue file records, to prove they stay content.
MARKER_LINES = [
    b"MAILHOST-QUEUE-FILE 1",
    b"E 12 00000000",
    b"M 5",
    b"X 100 " + b"0" * 64,
    b"S 2 00000000",
    b"{}",
    b".",
    b"",
]

# Addresses and names as smtpd may hand them over: any text, including
# undecodable 8-bit bytes carried as surrogate escapes.
texts = st.one_of(
    st.text(max_size=30),
    st.binary(max_size=20).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
notify = st.one_of(
    st.just(()),
    st.just(("NEVER",)),
    st.lists(st.sampled_from(["SUCCESS", "FAILURE", "DELAY"]), unique=True, min_size=1).map(tuple),
)
recipients = st.builds(Recipient, address=texts, original=texts, notify=notify, orcpt=texts)
clients = st.one_of(
    st.none(),
    st.builds(
        Client, name=texts, address=texts, port=st.integers(0, 65535), helo=texts,
        protocol=st.sampled_from(["SMTP", "ESMTP", "ESMTPS", "ESMTPSA"]),
    ),
)  # fmt: skip
envelopes = st.builds(
    Envelope,
    sender=texts,
    recipients=st.lists(recipients, min_size=1, max_size=5).map(tuple),
    arrival_time=st.floats(0, 4e9, allow_nan=False),
    client=clients,
    sasl_method=texts,
    sasl_username=texts,
    dsn_envid=texts,
    dsn_ret=st.sampled_from(["", "FULL", "HDRS"]),
    mail_params=st.lists(st.tuples(texts, texts), max_size=3).map(tuple),
    content_filter=st.one_of(st.just(""), texts),
    redirect=st.one_of(st.just(""), texts),
)
lines = st.lists(
    st.one_of(
        st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")),
        st.sampled_from(MARKER_LINES),
    ),
    max_size=20,
)


def status_records(nrcpt: int) -> st.SearchStrategy[list[object]]:
    return st.lists(
        st.one_of(
            st.builds(
                RecipientStatus,
                recipient=st.integers(0, nrcpt - 1),
                status=st.sampled_from(["sent", "deferred", "bounced"]),
                dsn=st.sampled_from(["2.0.0", "4.4.1", "5.1.1"]),
                reason=texts,
                time=st.floats(0, 4e9, allow_nan=False),
                relay=texts,
            ),
            st.builds(
                Schedule,
                next_attempt=st.floats(0, 4e9, allow_nan=False),
                attempts=st.integers(0, 1000),
            ),
            st.builds(Expire, time=st.floats(0, 4e9, allow_nan=False), forced=st.booleans()),
        ),
        max_size=6,
    )
