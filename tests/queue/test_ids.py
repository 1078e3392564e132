"""Queue ids: Postfix's short and long forms (mail_queue.h, spec 7.2)."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.queue.ids import (
    SAFE_ALPHABET,
    QueueIdClock,
    is_long_queue_id,
    is_queue_id,
    long_queue_id,
    long_queue_id_time,
    new_queue_id,
    queue_id_inode,
    short_queue_id,
)

usecs = st.integers(0, 999_999)
inodes = st.integers(0, 2**64 - 1)
seconds = st.integers(0, 2**40)


def test_short_id_matches_postfix_example() -> None:
    # spec 7.2: 532E9166431 = %05X microseconds 0x532E9 + %lX inode 0x166431.
    assert short_queue_id(0x532E9, 0x166431) == "532E9166431"
    assert short_queue_id(5, 0x2122BF) == "000052122BF"
    assert queue_id_inode("532E9166431") == 0x166431


def test_long_id_matches_postfix_example() -> None:
    # The long id 4Nq9Zk1bqSz5RLv from the Postfix documentation decodes to
    # 2023-01-07 19:42:06.226692 UTC and inode 724043; encoding them back must
    # give the same characters (alphabet order and digit order as Postfix's).
    assert long_queue_id(1673120526, 226692, 724043) == "4Nq9Zk1bqSz5RLv"
    assert queue_id_inode("4Nq9Zk1bqSz5RLv") == 724043
    assert long_queue_id_time("4Nq9Zk1bqSz5RLv") == pytest.approx(1673120526.226692)


def test_alphabet_is_digits_and_consonants() -> None:
    assert len(SAFE_ALPHABET) == 52
    assert len(set(SAFE_ALPHABET)) == 52
    assert not set("AEIOUaeiou") & set(SAFE_ALPHABET)
    assert SAFE_ALPHABET[-1] == "z"  # base 51 never produces the separator


def test_padding() -> None:
    assert long_queue_id(0, 0, 0) == "000000" + "0000" + "z" + "0"
    assert short_queue_id(0, 0) == "000000"


@pytest.mark.parametrize(
    ("text", "ok"),
    [("532E9166431", True), ("4Nq9Zk1bqSz5RLv", True), ("bad/id", False), ("", False),
     ("123.456.7", False), ("ALL", True), ("A" * 101, False), ("ä1", False)],
)  # fmt: skip
def test_is_queue_id(text: str, ok: bool) -> None:
    assert is_queue_id(text) is ok


def test_inode_of_non_ids_is_refused() -> None:
    for bad in ("bad/id", "XYZ", "12"):
        with pytest.raises(ValueError, match="not a queue id"):
            queue_id_inode(bad)


@given(usecs, inodes)
def test_short_ids_have_postfix_shape(usec: int, inode: int) -> None:
    qid = short_queue_id(usec, inode)
    assert re.fullmatch(r"[0-9A-F]{6,}", qid)
    assert int(qid[:5], 16) == usec
    assert queue_id_inode(qid) == inode
    assert not is_long_queue_id(qid)


@given(seconds, usecs, inodes)
def test_long_ids_round_trip(sec: int, usec: int, inode: int) -> None:
    qid = long_queue_id(sec, usec, inode)
    assert is_queue_id(qid)
    assert is_long_queue_id(qid)
    inode_part = long_queue_id(0, 0, inode)[11:]
    assert qid.endswith("z" + inode_part)
    assert "z" not in inode_part
    assert queue_id_inode(qid) == inode
    assert long_queue_id_time(qid) == pytest.approx(sec + usec / 1e6, abs=1e-6)


@given(seconds, usecs, inodes, inodes)
def test_distinct_inodes_give_distinct_ids(sec: int, usec: int, a: int, b: int) -> None:
    if a != b:
        assert short_queue_id(usec, a) != short_queue_id(usec, b)
        assert long_queue_id(sec, usec, a) != long_queue_id(sec, usec, b)


def test_new_queue_id_uses_the_clock() -> None:
    assert new_queue_id(0x10, now=12.5) == "7A12010"
    assert long_queue_id_time(new_queue_id(7, long_ids=True, now=1700000000.25)) == pytest.approx(
        1700000000.25
    )


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(ValueError, match="microseconds"):
        short_queue_id(1_000_000, 1)
    with pytest.raises(ValueError, match="microseconds"):
        long_queue_id(1, -1, 1)
    with pytest.raises(ValueError, match="negative"):
        short_queue_id(1, -1)


def test_one_process_never_repeats_a_recent_id_for_a_reused_inode() -> None:
    # Inline delivery frees a queue file's inode at once: the next message
    # gets it again (found by the benchmark: two messages, one id).
    clock = QueueIdClock()
    ids = [clock.issue(0x2A, False) for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(queue_id.endswith("2A") for queue_id in ids)


def test_workers_issue_disjoint_ids_for_the_same_inode() -> None:
    first, second = QueueIdClock(), QueueIdClock()
    first.set_worker(0, 2)
    second.set_worker(1, 2)
    a = {first.issue(7, False) for _ in range(2000)}
    b = {second.issue(7, False) for _ in range(2000)}
    assert not a & b
    assert {int(q[:5], 16) % 2 for q in a} == {0}
    assert {int(q[:5], 16) % 2 for q in b} == {1}


def test_issued_ids_follow_the_clock() -> None:
    clock = QueueIdClock()
    before = time.time()
    queue_id = clock.issue(7, True)
    assert before - 0.01 <= long_queue_id_time(queue_id) <= time.time() + 0.01
