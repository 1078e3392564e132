"""Queue ids: the names of queue files, shown by ``mailq`` and logged as the
``QID:`` prefix of every maillog line about a message.

Postfix derives a queue id from the time and the queue file's inode number
(mail_queue(3), spec 7.2):

* short form (``enable_long_queue_ids = no``, the default): the microseconds
  of the current second as exactly five upper-case hex digits, then the inode
  number in upper-case hex — ``532E9166431``;
* long form (``enable_long_queue_ids = yes``): the seconds in base 52 (at
  least six characters), the microseconds in base 52 (exactly four), a ``z``,
  then the inode number in base 51 — ``4Nq9Zk1bqSz5RLv``.  The alphabet is the
  ten digits followed by the upper- and lower-case consonants, so ids never
  spell words and ``z`` (the last symbol) cannot occur in a base-51 number.

The inode part is what makes ids unique without any coordination: while a
file exists no other file on the same file system has its inode, and queue
files only ever move by rename (which keeps the inode).  So every process that
creates its queue file first and names it after its inode gets an id no other
live queue file has, across threads and processes sharing the queue directory.
"""

from __future__ import annotations

import re
import time

#: Postfix's "safe" alphabet: digits, then consonants upper then lower case.
SAFE_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"

_SECONDS_BASE = 52
_SECONDS_MIN_WIDTH = 6
_USEC_BASE = 52
_USEC_WIDTH = 4
_INODE_BASE = 51
_INODE_SEPARATOR = "z"

# Queue ids are file names; Postfix's mail_queue_id_ok accepts only letters
# and digits (so "bad/id" or a temporary "123.456" name is never an id).
_VALID = re.compile(r"[0-9A-Za-z]{1,100}")
_SHORT = re.compile(r"[0-9A-F]{6,}")


def _encode(value: int, base: int, width: int) -> str:
    if value < 0:
        raise ValueError(f"cannot encode negative number {value}")
    digits = []
    while True:
        value, digit = divmod(value, base)
        digits.append(SAFE_ALPHABET[digit])
        if value == 0:
            break
    return "".join(reversed(digits)).rjust(width, "0")


def _decode(text: str, base: int) -> int:
    value = 0
    for char in text:
        digit = SAFE_ALPHABET.find(char)
        if digit < 0 or digit >= base:
            raise ValueError(f"{char!r} is not a base-{base} digit")
        value = value * base + digit
    return value


def short_queue_id(usec: int, inode: int) -> str:
    """``%05X`` microseconds + ``%lX`` inode."""
    if not 0 <= usec < 1_000_000:
        raise ValueError(f"microseconds out of range: {usec}")
    if inode < 0:
        raise ValueError(f"negative inode number {inode}")
    return f"{usec:05X}{inode:X}"


def long_queue_id(seconds: int, usec: int, inode: int) -> str:
    """Base-52 seconds (≥ 6) + base-52 microseconds (4) + ``z`` + base-51 inode."""
    if not 0 <= usec < 1_000_000:
        raise ValueError(f"microseconds out of range: {usec}")
    return (
        _encode(seconds, _SECONDS_BASE, _SECONDS_MIN_WIDTH)
        + _encode(usec, _USEC_BASE, _USEC_WIDTH)
        + _INODE_SEPARATOR
        + _encode(inode, _INODE_BASE, 0)
    )


class QueueIdClock:
    """The microsecond stamps of one process's queue ids.

    Postfix's ids are unique among the queue files that exist at one time
    (the inode), not over time.  A message delivered during DATA
    (mailhost.qmgr.inline) frees its file's inode at once, and the next
    message usually gets the same one, so two messages a second or more
    apart could get the same id if their microseconds coincide.  So this
    process's stamps only go forward, and one that would repeat an id issued
    in the last ``REMEMBER`` ids is moved on by a microsecond.  With several
    worker processes (mailhost.prefork) each takes the stamps of its own
    residue modulo the worker count, so workers never issue the same id.
    Ids still repeat over longer times, as Postfix's short ids do
    (``enable_long_queue_ids = yes`` gives non-repeating ones)."""

    REMEMBER = 65536

    def __init__(self) -> None:
        self.index, self.count = 0, 1
        self._last = 0
        self._recent: dict[str, None] = {}

    def set_worker(self, index: int, count: int) -> None:
        self.index, self.count = index, max(1, count)
        self._last = 0
        self._recent.clear()

    def issue(self, inode: int, long_ids: bool) -> str:
        stamp = max(time.time_ns() // 1000, self._last + 1)
        stamp += (self.index - stamp) % self.count
        while True:
            seconds, usec = divmod(stamp, 1_000_000)
            queue_id = (
                long_queue_id(seconds, usec, inode) if long_ids else short_queue_id(usec, inode)
            )
            if queue_id not in self._recent:
                break
            stamp += self.count
        self._last = stamp
        self._recent[queue_id] = None
        if len(self._recent) > self.REMEMBER:
            del self._recent[next(iter(self._recent))]  # the oldest
        return queue_id


#: This process's queue id stamps.
CLOCK = QueueIdClock()


def new_queue_id(inode: int, *, long_ids: bool = False, now: float | None = None) -> str:
    """The id for a queue file with ``inode`` created now (``now``: at that
    time exactly, without :data:`CLOCK`'s bookkeeping)."""
    if now is None:
        return CLOCK.issue(inode, long_ids)
    seconds, usec = divmod(round(now * 1_000_000), 1_000_000)
    if long_ids:
        return long_queue_id(seconds, usec, inode)
    return short_queue_id(usec, inode)


def is_queue_id(text: str) -> bool:
    """True when ``text`` may name a queue file (letters and digits only)."""
    return _VALID.fullmatch(text) is not None


def is_long_queue_id(text: str) -> bool:
    """True for the long form: a ``z`` after at least ten time characters."""
    sep = text.rfind(_INODE_SEPARATOR)
    return is_queue_id(text) and sep >= _SECONDS_MIN_WIDTH + _USEC_WIDTH


def queue_id_inode(queue_id: str) -> int:
    """The inode number encoded in a queue id (either form); ``ValueError``
    when ``queue_id`` is neither form."""
    if is_long_queue_id(queue_id):
        return _decode(queue_id[queue_id.rfind(_INODE_SEPARATOR) + 1 :], _INODE_BASE)
    if _SHORT.fullmatch(queue_id) is None:
        raise ValueError(f"not a queue id: {queue_id!r}")
    return int(queue_id[5:], 16)


def long_queue_id_time(queue_id: str) -> float:
    """The creation time encoded in a long queue id (seconds since the epoch)."""
    if not is_long_queue_id(queue_id):
        raise ValueError(f"not a long queue id: {queue_id!r}")
    sep = queue_id.rfind(_INODE_SEPARATOR)
    seconds = _decode(queue_id[: sep - _USEC_WIDTH], _SECONDS_BASE)
    usec = _decode(queue_id[sep - _USEC_WIDTH : sep], _USEC_BASE)
    return seconds + usec / 1_000_000
