"""The Maildir++ maildirsize file (spec 6.1, 6.2, 6.6).  Expected files are
the ones Dovecot 2.3.19 wrote on this machine (spec 6.1/6.3 observations)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.quota.maildirsize import (
    FILENAME,
    LOCK_NAME,
    READ_LIMIT,
    QuotaLimits,
    Usage,
    append_delta,
    format_file,
    format_limits,
    parse_limits,
    parse_maildirsize,
    read_quota,
    recalc_reason,
    scan_usage,
)

GIB = QuotaLimits(1073741824)


def put(maildir: Path, folder: str, sub: str, name: str, data: bytes = b"") -> Path:
    d = maildir / folder / sub if folder else maildir / sub
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)
    return d / name


def make_maildir(tmp_path: Path) -> Path:
    md = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (md / sub).mkdir(parents=True)
    return md


@pytest.mark.parametrize(
    ("line", "limits"),
    [
        ("10000000S,1000C", QuotaLimits(10000000, 1000)),
        ("1073741824S", QuotaLimits(1073741824, 0)),
        ("500S,10C", QuotaLimits(500, 10)),
        ("1000C", QuotaLimits(0, 1000)),
        ("0S", QuotaLimits()),
        ("0S,0C", QuotaLimits()),
        ("junk,100S", QuotaLimits(100, 0)),
        ("100X,7C", QuotaLimits(0, 7)),
        ("", QuotaLimits()),
    ],
)
def test_parse_limits(line, limits):
    assert parse_limits(line) == limits


@pytest.mark.parametrize(
    ("limits", "line"),
    [
        (QuotaLimits(1073741824), "1073741824S"),
        (QuotaLimits(100), "100S"),
        (QuotaLimits(500, 10), "500S,10C"),
        (QuotaLimits(0, 50), "50C"),
        (QuotaLimits(), "0S"),
    ],
)
def test_format_limits_as_dovecot_writes_them(limits, line):
    assert format_limits(limits) == line


@given(st.integers(0, 2**62), st.integers(0, 2**31))
def test_limits_round_trip(size, count):
    limits = QuotaLimits(size, count)
    assert parse_limits(format_limits(limits)) == limits


def test_parse_observed_dovecot_sequence():
    parsed = parse_maildirsize(b"1073741824S\n0 0\n36 1\n31 1\n")
    assert parsed is not None
    assert parsed.limits == GIB
    assert parsed.usage == Usage(67, 2)
    assert parsed.deltas == 3


def test_courier_padded_lines_and_negative_deltas():
    parsed = parse_maildirsize(b"100S\n67 2         \n-36 -1        \n")
    assert parsed is not None
    assert parsed.usage == Usage(31, 1)


@pytest.mark.parametrize(
    "data",
    [
        b"100S\nabc def\n",
        b"100S\n1\n",
        b"100S\n\n1 1\n",
        b"100S\n1 1\0\n",
        b"100S\n-5 -1\n",
        b"100S\n10 1",  # unterminated last line: a write in progress
        b"1000S\n" + b"1 1\n" * 1300,  # >= 5120 bytes
    ],
)
def test_broken_files_are_recalculated(data):
    assert parse_maildirsize(data) is None


def test_file_just_under_the_read_limit_is_trusted():
    data = b"1073741824S\n" + b"1 1\n" * 700
    assert len(data) < READ_LIMIT
    assert parse_maildirsize(data) is not None


@given(st.binary(max_size=600))
def test_parser_never_raises(data):
    parsed = parse_maildirsize(data)
    if parsed is not None:
        assert parsed.usage.bytes >= 0
        assert parsed.usage.count >= 0


@given(
    st.integers(0, 10**12),
    st.integers(0, 10**6),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 5)), max_size=40),
)
def test_appended_deltas_sum(size, count, deltas):
    data = format_file(QuotaLimits(size), Usage(size, count))
    for b, c in deltas:
        data += f"{b} {c}\n".encode()
    parsed = parse_maildirsize(data)
    if len(data) >= READ_LIMIT:
        assert parsed is None
    else:
        assert parsed is not None
        assert parsed.usage == Usage(
            size + sum(b for b, _ in deltas), count + sum(c for _, c in deltas)
        )


def test_recalc_rules_over_quota_age_and_delta_count():
    now = time.time()
    over_one = parse_maildirsize(b"100S\n150 2\n")
    assert recalc_reason(over_one, mtime=now - 60, now=now, configured=None, forced=False) is None
    assert (
        recalc_reason(over_one, mtime=now - 20 * 60, now=now, configured=None, forced=False)
        == "over quota"
    )
    over_two = parse_maildirsize(b"100S\n67 2\n36 1\n")
    assert (
        recalc_reason(over_two, mtime=now, now=now, configured=None, forced=False) == "over quota"
    )
    under = parse_maildirsize(b"1000S\n67 2\n36 1\n")
    assert recalc_reason(under, mtime=now - 3600, now=now, configured=None, forced=False) is None


def test_forced_limits_replace_the_header_non_forced_keep_it():
    parsed = parse_maildirsize(b"500S,10C\n10 1\n")
    now = time.time()
    assert recalc_reason(parsed, mtime=now, now=now, configured=GIB, forced=False) is None
    assert (
        recalc_reason(parsed, mtime=now, now=now, configured=GIB, forced=True) == "limits changed"
    )


def test_scan_counts_sizes_from_names_and_stat_in_all_folders(tmp_path):
    md = make_maildir(tmp_path)
    put(md, "", "new", "1.M1P1.h,S=36,W=41", b"x" * 999)  # the name is believed
    put(md, "", "cur", "2.M1P1.h,S=31:2,S")
    put(md, "", "cur", "3.M1P1.h,S=abc:2,", b"12345")  # no usable S=: stat()
    put(md, ".Trash", "cur", "4.M1P1.h,S=100:2,ST")
    put(md, ".Sent", "new", "5.M1P1.h,S=7")
    put(md, "", "tmp", "6.M1P1.h,S=1000")  # tmp/ never counts
    put(md, "", "new", ".hidden,S=1000")
    usage, stamps = scan_usage(md)
    assert usage == Usage(36 + 31 + 5 + 100 + 7, 5)
    assert stamps


def test_first_delivery_writes_header_and_zero_line(tmp_path):
    md = make_maildir(tmp_path)
    state = read_quota(md, GIB)
    assert state.recalculated == "missing"
    assert (md / FILENAME).read_bytes() == b"1073741824S\n0 0\n"
    append_delta(md, 36, 1)
    assert (md / FILENAME).read_bytes() == b"1073741824S\n0 0\n36 1\n"
    assert not (md / LOCK_NAME).exists()
    assert oct((md / FILENAME).stat().st_mode & 0o777) == "0o600"


def test_over_quota_file_with_two_deltas_is_recalculated_from_files(tmp_path):
    md = make_maildir(tmp_path)
    put(md, "", "cur", "1.a.h,S=36:2,S")
    put(md, "", "cur", "2.a.h,S=31:2,S")
    put(md, "", "new", "3.a.h,S=36")
    (md / FILENAME).write_bytes(b"100S\n67 2\n36 1\n")
    state = read_quota(md, QuotaLimits(100))
    assert state.usage == Usage(103, 3)
    assert (md / FILENAME).read_bytes() == b"100S\n103 3\n"


def test_large_file_of_bogus_lines_is_replaced(tmp_path):
    # Observed with Dovecot: 5212 bytes of "1 1" lines replaced by the real sum.
    md = make_maildir(tmp_path)
    put(md, "", "new", "1.a.h,S=196")
    (md / FILENAME).write_bytes(b"1073741824S\n" + b"1 1\n" * 1300)
    assert read_quota(md, GIB).usage == Usage(196, 1)
    assert (md / FILENAME).read_bytes() == b"1073741824S\n196 1\n"


def test_trusted_file_is_not_rewritten(tmp_path):
    md = make_maildir(tmp_path)
    (md / FILENAME).write_bytes(b"500S,10C\n10 1\n5 1\n")
    state = read_quota(md, GIB, forced=False)
    assert state.recalculated is None
    assert state.limits == QuotaLimits(500, 10)
    assert state.usage == Usage(15, 2)


def test_forced_rule_rewrites_a_count_only_header(tmp_path):
    md = make_maildir(tmp_path)
    put(md, "", "new", "1.a.h,S=165")
    (md / FILENAME).write_bytes(b"50C\n165 1\n")
    read_quota(md, GIB, forced=True)
    assert (md / FILENAME).read_bytes() == b"1073741824S\n165 1\n"


def test_no_configured_limits_takes_them_from_the_file_or_writes_0S(tmp_path):
    md = make_maildir(tmp_path)
    assert read_quota(md, None).limits == QuotaLimits()
    assert (md / FILENAME).read_bytes() == b"0S\n0 0\n"


def test_someone_elses_recalculation_lock_is_respected(tmp_path):
    md = make_maildir(tmp_path)
    (md / LOCK_NAME).write_bytes(b"")
    state = read_quota(md, GIB)
    assert state.usage == Usage()
    assert not (md / FILENAME).exists()  # left for the lock holder to write
    old = time.time() - 3600
    os.utime(md / LOCK_NAME, (old, old))
    read_quota(md, GIB)
    assert (md / FILENAME).read_bytes() == b"1073741824S\n0 0\n"


def test_append_to_missing_file_leaves_it_missing(tmp_path):
    md = make_maildir(tmp_path)
    assert append_delta(md, 10, 1) is False
    assert not (md / FILENAME).exists()
