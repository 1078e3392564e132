"""delay=/delays= numbers and the delivery log line (spec 8 rules; the vectors
are the spec's, observed in Postfix 3.7.11 maillog lines)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.qmgr.delays import Delays, delivery_line, format_delay


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0"),
        (0.001, "0"),
        (0.005, "0.01"),
        (0.01, "0.01"),
        (0.111, "0.11"),
        (1.234, "1.2"),
        (9.96, "10"),
        (12.34, "12"),
        (12.6, "13"),
        (996, "996"),
    ],
)
def test_format_delay_matches_postfix(seconds: float, text: str) -> None:
    assert format_delay(seconds) == text


def test_resolution_limit_bounds_the_decimals() -> None:
    assert format_delay(0.111, 0) == "0"
    assert format_delay(0.5, 0) == "1"
    assert format_delay(0.0123, 6) == "0.012"


@given(st.floats(min_value=0, max_value=10**7, allow_nan=False))
def test_format_delay_is_close_and_canonical(seconds: float) -> None:
    text = format_delay(seconds)
    value = Decimal(text)
    assert not text.endswith(".")
    assert "." not in text or not text.endswith("0")
    assert len(text.partition(".")[2]) <= 2
    # Two significant digits or two decimals, whichever is coarser (+ rounding).
    tolerance = max(Decimal("0.005"), Decimal(seconds) * Decimal("0.05")) + Decimal("1e-6")
    assert abs(value - Decimal(seconds)) <= tolerance


def test_delivery_line_shape_matches_postfix() -> None:
    delays = Delays(0.01, 0.01, 0, 0)
    assert delivery_line(
        "ABC",
        "alice@example.com",
        "postmaster@example.com",
        relay="virtual",
        delays=delays,
        dsn="2.0.0",
        status="sent",
        reason="delivered to maildir",
    ) == (
        "ABC: to=<alice@example.com>, orig_to=<postmaster@example.com>, relay=virtual, "
        "delay=0.02, delays=0.01/0.01/0/0, dsn=2.0.0, status=sent (delivered to maildir)"
    )


def test_orig_to_only_when_it_differs_ignoring_case() -> None:
    line = delivery_line(
        "ABC",
        "alice+Tag@example.com",
        "Alice+Tag@Example.com",
        relay="virtual",
        delays=Delays(0, 0, 0, 0),
        dsn="2.0.0",
        status="sent",
        reason="delivered to maildir",
    )
    assert line == (
        "ABC: to=<alice+Tag@example.com>, relay=virtual, delay=0, delays=0/0/0/0, "
        "dsn=2.0.0, status=sent (delivered to maildir)"
    )


def test_addresses_in_external_form() -> None:
    line = delivery_line(
        "ABC",
        "a b@example.com",
        "",
        relay="none",
        delays=Delays(0, 0, 0, 0),
        dsn="5.1.1",
        status="bounced",
        reason='unknown user: "a b@example.com"',
    )
    assert line.startswith('ABC: to=<"a b"@example.com>, relay=none, ')
