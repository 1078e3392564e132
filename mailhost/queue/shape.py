"""``qshape``: the queue's domain and age distribution (spec 7.3), pure
counting and formatting; :mod:`mailhost.cli.qshape` reads the queue files.

Everything here reproduces Postfix 3.7.11's qshape(1) script, checked against
its output on a real queue (tests/queuetools/postfix_queue.json):

* an age in units of ``bucket_time`` minutes, ``m = age / (60 * t)``, falls in
  bucket 1 when ``m < 1``, else ``2 + floor(log2 m)`` (``-l``: ``floor(m + 1)``),
  at most ``bucket_count``; column 0 is the total;
* headings ``T``, ``t``, then doubling (``-l``: ``t`` added), the last one the
  previous limit with ``+``;
* a domain is the address after its last ``@``, ASCII lower-cased, doubled
  dots squeezed, one leading and one trailing dot dropped; the null sender is
  ``MAILER-DAEMON``; ``-p`` also counts every parent down to the second level
  (``.example.com``) and shows a parent when it has at least ``min_subdomains``
  distinct children;
* rows sorted by total, largest first, then by shorter name (``TOTAL`` is a
  row like the others, so a shorter domain with the same count precedes it);
  qshape leaves rows of equal count and length in Perl hash order, mailhost
  sorts those by name (``TOTAL`` first);
* column width ``max(len(TOTAL's count), len(heading)) + 1``, at least 3; the
  domain right-justified in what is left of ``width`` (80, or ``-w`` when
  larger), at least 18 characters; a longer name is shown as ``+`` and its
  last characters (``.+`` for parents).  Widths count bytes, as Perl does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

TOTAL = "TOTAL"
NULL_SENDER = "MAILER-DAEMON"
DEFAULT_WIDTH = 80
MIN_DOMAIN_WIDTH = 18


@dataclass(frozen=True)
class ShapeOptions:
    senders: bool = False  # -s
    parents: bool = False  # -p
    min_subdomains: int = 5  # -m
    bucket_count: int = 10  # -b
    bucket_time: float = 5  # -t, minutes
    linear: bool = False  # -l
    width: int = DEFAULT_WIDTH  # -w

    @classmethod
    def from_args(
        cls,
        *,
        senders: bool = False,
        parents: bool = False,
        min_subdomains: float | None = None,
        bucket_count: float | None = None,
        bucket_time: float | None = None,
        linear: bool = False,
        width: float | None = None,
    ) -> ShapeOptions:
        """Options as qshape takes them: a value that is not positive (``-w``:
        not above 80) is ignored and the default kept."""
        default = cls()
        return cls(
            senders=senders,
            parents=parents,
            min_subdomains=int(min_subdomains) if min_subdomains and min_subdomains > 0
            else default.min_subdomains,
            bucket_count=int(bucket_count) if bucket_count and bucket_count > 0
            else default.bucket_count,
            bucket_time=bucket_time if bucket_time and bucket_time > 0 else default.bucket_time,
            linear=linear,
            width=int(width) if width and width > DEFAULT_WIDTH else default.width,
        )  # fmt: skip


@dataclass(frozen=True)
class ShapeMessage:
    """What qshape reads from a queue file: arrival time, sender, the
    recipients not yet done (internal form)."""

    arrival_time: float
    sender: str
    recipients: tuple[str, ...]


def bucket(arrival_time: float, now: float, options: ShapeOptions) -> int:
    """The age column (1 .. bucket_count) of a message."""
    m = (now - arrival_time) / (60 * options.bucket_time)
    if m < 1:
        return 1
    b = math.floor(m + 1) if options.linear else 2 + math.floor(math.log(m) / math.log(2))
    return min(b, options.bucket_count)


def headings(options: ShapeOptions) -> list[str]:
    """``T`` and the bucket limits (qshape's loop, also for odd -b values)."""
    heads = []
    t: float | str = 0
    for i in range(options.bucket_count + 1):
        heads.append("T" if i == 0 else _number(t))
        if i + 1 < options.bucket_count:
            assert not isinstance(t, str)
            t = t + (t if t and not options.linear else options.bucket_time)
        else:
            t = f"{_number(t)}+"
    return heads


def _number(value: float | str) -> str:
    """A limit as Perl prints a number (no ``.0`` for whole numbers)."""
    if isinstance(value, str):
        return value
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.15g}"


_ASCII_UPPER = re.compile(r"[A-Z]+")


def domain_of(address: str) -> str:
    """The domain qshape files an address under."""
    text = _ASCII_UPPER.sub(lambda m: m.group(0).lower(), address)
    if text == "":
        return NULL_SENDER
    text = text.rpartition("@")[2]
    text = text.replace("..", ".")
    return re.sub(r"\.?(.+?)\.?$", r"\1", text, count=1)


def parents_of(domain: str) -> list[str]:
    """``-p``: ``a.b.example.com`` → ``.b.example.com``, ``.example.com``."""
    out: list[str] = []
    pattern = re.compile(r"^\.?[^.]+\.(.*\.)")
    while True:
        match = pattern.match(domain)
        if match is None:
            return out
        domain = "." + match.group(1) + domain[match.end() :]
        out.append(domain)


@dataclass
class Shape:
    """The counters: per name, total and per bucket; distinct children of parents."""

    options: ShapeOptions
    counts: dict[str, list[int]] = field(default_factory=dict)
    children: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts.setdefault(TOTAL, [0] * (self.options.bucket_count + 1))

    def _count(self, name: str, column: int) -> bool:
        row = self.counts.get(name)
        seen = row is not None
        if row is None:
            row = self.counts[name] = [0] * (self.options.bucket_count + 1)
        row[0] += 1
        row[column] += 1
        return seen

    def add(self, message: ShapeMessage, now: float) -> None:
        column = bucket(message.arrival_time, now, self.options)
        addresses = (message.sender,) if self.options.senders else message.recipients
        for address in addresses:
            self._count(TOTAL, column)
            domain = domain_of(address)
            names = [domain, *parents_of(domain)] if self.options.parents else [domain]
            new = False
            for name in names:
                if new:
                    self.children[name] = self.children.get(name, 0) + 1
                new = not self._count(name, column)

    def rows(self) -> list[str]:
        """The names shown, in qshape's order."""

        def key(name: str) -> tuple[int, int, int, str]:
            return (-self.counts[name][0], len(_bytes(name)), name != TOTAL, name)

        minimum = self.options.min_subdomains
        return [
            name
            for name in sorted(self.counts, key=key)
            if not (name.startswith(".") and self.children.get(name, 0) < minimum)
        ]


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def render(shape: Shape) -> str:
    """The qshape report."""
    heads = headings(shape.options)
    total = shape.counts[TOTAL]
    widths = []
    for count, head in zip(total, heads, strict=True):
        w = max(len(str(count)), len(head))
        widths.append(w + 1 if w > 2 else 3)
    domain_width = max(shape.options.width - sum(widths), MIN_DOMAIN_WIDTH)

    def line(name: str, cells: Sequence[object]) -> str:
        raw = _bytes(name)
        if len(raw) > domain_width:
            keep = domain_width - 2 if raw.startswith(b".") else domain_width - 1
            prefix = b".+" if raw.startswith(b".") else b"+"
            raw = prefix + raw[len(raw) - keep :]
        shown = b" " * (domain_width - len(raw)) + raw
        text = shown.decode("utf-8", "surrogateescape")
        return text + "".join(f"{cell!s:>{w}}" for cell, w in zip(cells, widths, strict=True))

    out = [line("", heads)]
    out += [line(name, shape.counts[name]) for name in shape.rows()]
    return "\n".join(out) + "\n"


def qshape(messages: Iterable[ShapeMessage], now: float, options: ShapeOptions) -> str:
    shape = Shape(options)
    for message in messages:
        shape.add(message, now)
    return render(shape)
