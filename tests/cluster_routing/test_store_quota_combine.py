"""How check_store_quota_service combines its stores' answers
(mailhost.smtpd_check.store_quota.combine): a fan-out is refused only when
every final mailbox is refused, a temporary refusal wins over a permanent
one, and the restriction never permits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.smtpd_check.store_quota import combine, refusal

OVER = "554 5.2.2 Quota exceeded (mailbox for user is full)"


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("DUNNO", None),
        ("OK", None),
        ("", None),
        ("PREPEND X-Quota: ok", None),
        ("REJECT Unknown user", "hard"),
        ("reject", "hard"),
        (OVER, "hard"),
        ("450 4.2.2 Mailbox full", "soft"),
        ("DEFER_IF_PERMIT Temporary lookup failure", "soft"),
        ("defer Try later", "soft"),
        ("DEFER_IF_REJECT x", "soft"),
        ("250 ok", None),
        ("5.2.2 text", None),
    ],
)
def test_refusal_kinds(action, kind):
    assert refusal(action) == kind


@pytest.mark.parametrize(
    ("answers", "chosen"),
    [
        ([], None),
        ([OVER], 0),
        (["DUNNO"], None),
        ([OVER, "DUNNO"], None),  # one member has room
        ([OVER, None], None),  # one member no store holds
        ([OVER, "REJECT Unknown user"], 0),
        ([OVER, "DEFER_IF_PERMIT Temporary lookup failure"], 1),
        (["OK", OVER], None),
    ],
)
def test_combine(answers, chosen):
    assert combine(answers) == chosen


answers = st.lists(
    st.one_of(
        st.none(),
        st.sampled_from(["DUNNO", "OK", OVER, "REJECT x", "451 4.3.0 x", "DEFER_IF_PERMIT x"]),
        st.text(max_size=20),
    ),
    max_size=6,
)


@given(answers)
def test_combine_only_ever_picks_a_refusal_when_all_refuse(values):
    chosen = combine(values)
    if chosen is None:
        return
    assert all(v is not None and refusal(v) for v in values)
    picked = values[chosen]
    assert picked is not None
    if any(refusal(v or "") == "soft" for v in values):
        assert refusal(picked) == "soft"
