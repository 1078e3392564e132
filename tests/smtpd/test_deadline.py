"""smtpd_timeout per read or per request (mailhost.smtpd.deadline): the
properties of the deadline arithmetic; the behaviour against a real server
is compared with Postfix in test_caps_match_postfix.py."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mailhost.config import Config
from mailhost.smtpd.deadline import DeadlinePolicy

timeouts = st.floats(min_value=0.5, max_value=600)
rates = st.integers(min_value=1, max_value=100_000)
reads = st.lists(
    st.tuples(st.floats(min_value=0, max_value=5), st.integers(min_value=1, max_value=65536)),
    max_size=50,
)


@given(timeouts, reads)
def test_per_read_deadline_is_timeout_after_each_read(
    timeout: float, steps: list[tuple[float, int]]
) -> None:
    policy = DeadlinePolicy(timeout, per_request=False)
    now = 0.0
    deadline = policy.start(now)
    for gap, size in steps:
        now += gap
        deadline = policy.after_read(deadline, now, size, in_data=True)
        assert deadline == now + timeout


@given(timeouts, reads)
def test_per_request_command_deadline_never_moves(
    timeout: float, steps: list[tuple[float, int]]
) -> None:
    policy = DeadlinePolicy(timeout, per_request=True)
    start = policy.start(0.0)
    deadline, now = start, 0.0
    for gap, size in steps:
        now += gap
        deadline = policy.after_read(deadline, now, size, in_data=False)
    assert deadline == start


@given(timeouts, rates, reads)
def test_data_deadline_grows_with_input_but_never_past_the_timeout(
    timeout: float,
    rate: int,
    steps: list[tuple[float, int]],
) -> None:
    policy = DeadlinePolicy(timeout, per_request=True, min_data_rate=rate)
    now = 0.0
    deadline = policy.start(now)
    for gap, size in steps:
        now += gap
        if now > deadline:
            break  # the session timed out here
        new = policy.after_read(deadline, now, size, in_data=True)
        assert deadline <= new <= now + timeout
        assert new <= deadline + size / rate + 1e-9
        deadline = new


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=2, max_value=10_000))
def test_a_client_slower_than_min_data_rate_is_dropped(timeout: int, rate: int) -> None:
    """One byte a second against smtpd_min_data_rate bytes/s: the deadline
    is passed a little after smtpd_timeout seconds."""
    policy = DeadlinePolicy(float(timeout), per_request=True, min_data_rate=rate)
    deadline = policy.start(0.0)
    second = 0
    while second + 1 <= deadline:
        second += 1
        deadline = policy.after_read(deadline, float(second), 1, in_data=True)
    assert timeout <= second + 1
    assert second <= timeout * rate / (rate - 1) + 1


def test_postfix_defaults() -> None:
    assert DeadlinePolicy.from_config(Config(Path("/x"), {})) == DeadlinePolicy(300.0, False, 500)
    stressed = DeadlinePolicy.from_config(Config(Path("/x"), {"stress": "yes"}))
    assert stressed == DeadlinePolicy(10.0, True, 500)
    legacy = Config(Path("/x"), {"smtpd_per_record_deadline": "yes"})
    assert DeadlinePolicy.from_config(legacy).per_request
