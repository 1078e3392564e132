"""Pure quota decisions (spec 6.3 enforcement, 6.5 PostfixAdmin units)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.quota.maildirsize import QuotaLimits, Usage
from mailhost.quota.policy import (
    QUOTA_EXCEEDED_TEXT,
    QuotaPolicy,
    QuotaValueError,
    crossed,
    decide,
    effective_limit,
    fits,
    parse_grace,
    parse_limit_value,
    parse_percents,
    postfixadmin_bytes,
)

STRICT = QuotaPolicy()
DOVECOT = QuotaPolicy(grace_percent=10)


def test_limit_values_are_bytes():
    assert parse_limit_value("10240000") == 10240000
    assert parse_limit_value(" 0 ") == 0
    for bad in ["", "-1", "10M", "1e6", "١٢"]:
        with pytest.raises(QuotaValueError):
            parse_limit_value(bad)


def test_postfixadmin_megabytes():
    assert postfixadmin_bytes(10) == 10240000
    assert postfixadmin_bytes(10, 1048576) == 10485760
    assert postfixadmin_bytes(0) == 0
    assert postfixadmin_bytes(-1) is None


@pytest.mark.parametrize(
    ("mailbox", "cap", "limit"),
    [(100, None, 100), (100, 0, 100), (100, 50, 50), (30, 50, 30), (0, 50, 50), (0, None, 0)],
)
def test_domain_cap(mailbox, cap, limit):
    assert effective_limit(mailbox, cap) == limit


def test_strict_policy_refuses_what_would_exceed():
    limits = QuotaLimits(100)
    assert fits(limits, Usage(64, 1), 36, STRICT)
    assert not fits(limits, Usage(67, 2), 36, STRICT)
    decision = decide(limits, Usage(67, 2), 36, STRICT)
    assert not decision.accepted
    assert decision.status is not None
    assert (decision.status.dsn, decision.status.text) == ("5.2.2", QUOTA_EXCEEDED_TEXT)


def test_defer_instead_of_bounce():
    status = decide(QuotaLimits(100), Usage(100, 1), 1, QuotaPolicy(bounce=False)).status
    assert status is not None
    assert status.dsn == "4.2.2"
    assert status.deferred


def test_dovecot_grace_as_observed():
    # limit 100, usage 67: a 36-byte message is accepted (103), the next refused.
    limits = QuotaLimits(100)
    assert fits(limits, Usage(67, 2), 36, DOVECOT)
    assert not fits(limits, Usage(103, 3), 36, DOVECOT)
    assert not fits(limits, Usage(67, 2), 44, DOVECOT)  # 111 > 100 + 10
    # Larger than the limit itself but within the grace: accepted, as
    # Dovecot's quota-status accepts it (postfix_quota_status.json).
    assert fits(limits, Usage(0, 0), 110, DOVECOT)
    assert not fits(limits, Usage(0, 0), 111, DOVECOT)


def test_count_limit():
    assert fits(QuotaLimits(0, 2), Usage(10, 1), 5, STRICT)
    assert not fits(QuotaLimits(0, 2), Usage(10, 2), 5, STRICT)


def test_unlimited_accepts_everything():
    assert fits(QuotaLimits(), Usage(10**15, 10**9), 10**9, STRICT)


def test_warnings_fire_once_per_crossing():
    assert crossed(1000, 700, 850, (80, 95)) == (80,)
    assert crossed(1000, 850, 900, (80, 95)) == ()
    assert crossed(1000, 700, 960, (80, 95)) == (80, 95)
    assert crossed(1000, 799, 800, (80,)) == (80,)
    assert crossed(0, 0, 10**9, (80,)) == ()
    decision = decide(QuotaLimits(1000), Usage(700, 7), 150, QuotaPolicy(warn_percents=(80, 95)))
    assert decision.accepted
    assert decision.warnings == (80,)


@given(
    st.integers(1, 10**9),
    st.integers(0, 10**9),
    st.integers(0, 10**7),
    st.integers(0, 50),
)
def test_accepted_messages_stay_within_limit_plus_grace(limit, used, size, grace):
    policy = QuotaPolicy(grace_percent=grace)
    if fits(QuotaLimits(limit), Usage(used, 0), size, policy):
        assert used + size <= limit + policy.grace(limit)
        if grace == 0:
            assert used + size <= limit


@given(st.integers(1, 10**9), st.integers(0, 10**9), st.integers(0, 10**9))
def test_crossings_partition(limit, a, b):
    # Going a → c crosses the same thresholds as a → b plus b → c.
    lo, hi = sorted((a, b))
    mid = (lo + hi) // 2
    pcts = (50, 80, 95, 100)
    assert crossed(limit, lo, hi, pcts) == tuple(
        sorted(crossed(limit, lo, mid, pcts) + crossed(limit, mid, hi, pcts))
    )


def test_grace_and_percent_settings():
    assert parse_grace("10%") == (0, 10)
    assert parse_grace("10M") == (10 << 20, 0)
    assert parse_grace("1024") == (1024, 0)
    assert parse_percents("80, 95%") == (80, 95)
    assert parse_percents("") == ()
    with pytest.raises(QuotaValueError):
        parse_percents("0")
    with pytest.raises(QuotaValueError):
        parse_grace("lots")


@given(st.text(max_size=20))
def test_setting_parsers_raise_only_quota_errors(text):
    for parser in (parse_grace, parse_percents, parse_limit_value):
        try:
            parser(text)
        except QuotaValueError:
            pass
