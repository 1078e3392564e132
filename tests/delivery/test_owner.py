"""virtual_uid_maps / virtual_gid_maps checks (spec 4.1, 4.4 test cases)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.delivery.owner import atol, mailbox_owner
from mailhost.delivery.status import DeliveryError


def test_valid_owner():
    assert mailbox_owner("bob@example.com", "5000", "5000", 100) == (5000, 5000)
    assert mailbox_owner("bob@example.com", " 100x", "8 ", 100) == (100, 8)


@pytest.mark.parametrize(
    ("uid", "gid", "warning"),
    [
        (None, "5000", "recipient bob@example.com: not found in virtual_uid_maps"),
        ("50", "5000", "recipient bob@example.com: bad uid 50 in virtual_uid_maps"),
        ("abc", "5000", "recipient bob@example.com: bad uid abc in virtual_uid_maps"),
        ("5000", None, "recipient bob@example.com: not found in virtual_gid_maps"),
        ("5000", "0", "recipient bob@example.com: bad gid 0 in virtual_gid_maps"),
        ("5000", "-3", "recipient bob@example.com: bad gid -3 in virtual_gid_maps"),
    ],
)
def test_bad_owner_defers_4_3_5(caplog, uid, gid, warning):
    with caplog.at_level(logging.WARNING, logger="mailhost"), pytest.raises(DeliveryError) as info:
        mailbox_owner("bob@example.com", uid, gid, 100)
    assert (info.value.dsn, info.value.text) == ("4.3.5", "mail system configuration error")
    assert [r.getMessage() for r in caplog.records] == [warning]


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ("  -7", -7), ("+5abc", 5), ("abc", 0), ("", 0), ("-", 0), ("1 2", 1)],
)
def test_atol(text, value):
    assert atol(text) == value


@given(st.text(max_size=20))
def test_atol_never_raises(text):
    assert isinstance(atol(text), int)


@given(st.integers(-(10**12), 10**12))
def test_atol_reads_integers(n):
    assert atol(f" {n}junk") == n
