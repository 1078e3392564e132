"""``mailhost qshape``: Postfix's qshape(1), the domain and age distribution
of queued mail (spec 7.3; counting and layout in :mod:`mailhost.queue.shape`).

``qshape [-s] [-p] [-m N] [-b N] [-t N] [-l] [-w N] [queue...]``: by default
the ``incoming`` and ``active`` queues; a queue name is taken relative to
``queue_directory``, an absolute path names a directory of queue files as
is.  As qshape, force-expired messages are not counted (qshape skips queue
files whose mode is not exactly Postfix's "ready" 0700, and ``postsuper -e``
marks files by their mode); unlike qshape, ``maildrop`` files are counted
(qshape cannot read their arrival time and counts nothing, with a Perl
warning).  Ages are measured against the time the command starts.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from pathlib import Path

import click

from mailhost.cli.common import command_errors, config_dir_option
from mailhost.cli.queuedir import open_queue, read_queues
from mailhost.errors import UsageError
from mailhost.queue.ids import is_queue_id
from mailhost.queue.layout import ACTIVE, INCOMING, QUEUE_NAMES, QueueEntry
from mailhost.queue.qfile import CorruptQueueFile, QueueFile
from mailhost.queue.shape import ShapeMessage, ShapeOptions
from mailhost.queue.shape import qshape as render_qshape
from mailhost.queue.store import QueueStore

DEFAULT_QUEUES = (INCOMING, ACTIVE)
# Not qshape's (it has no limits): a line is built per bucket and padded to
# the width, so absurd values would only exhaust memory.
MAX_BUCKETS = 1000
MAX_WIDTH = 10000


def shape_message(qf: QueueFile) -> ShapeMessage | None:
    """What qshape counts of a queue file (None: not counted)."""
    if qf.forced_expire:
        return None
    return ShapeMessage(
        # qshape reads the whole seconds of the arrival time record.
        arrival_time=math.floor(qf.envelope.arrival_time),
        sender=qf.envelope.sender,
        recipients=tuple(rcpt.address for _, rcpt, _ in qf.pending()),
    )


def _files_under(directory: Path) -> list[Path]:
    found = []
    for parent, _dirs, names in os.walk(directory):
        found += [Path(parent) / name for name in names if is_queue_id(name)]
    return found


async def _read_paths(store: QueueStore, paths: list[Path]) -> list[QueueFile]:
    out = []
    for path in paths:
        try:
            out.append(await store.read_entry(QueueEntry("", path.name, path), content=False))
        except (CorruptQueueFile, FileNotFoundError, IsADirectoryError, PermissionError):
            continue
    return out


def collect(store: QueueStore, queues: tuple[str, ...]) -> list[ShapeMessage]:
    """The messages of the named queues (names or absolute paths)."""
    files: list[QueueFile] = []
    for name in queues:
        if name in QUEUE_NAMES:
            files += [f.qfile for f in read_queues(store, (name,))]
            continue
        directory = Path(name) if os.path.isabs(name) else store.root / name
        if not directory.is_dir():
            click.echo(f"qshape: warning: cannot open {directory}: no such directory", err=True)
            continue
        files += asyncio.run(_read_paths(store, _files_under(directory)))
    return [m for m in map(shape_message, files) if m is not None]


@click.command("qshape", context_settings={"help_option_names": ["--help"]})
@config_dir_option
@click.option("-s", "senders", is_flag=True, help="Sender domains instead of recipient domains.")
@click.option("-p", "parents", is_flag=True, help="Also count parent domains (.example.com).")
@click.option("-m", "min_subdomains", type=float, help="Subdomains a parent row needs (5).")
@click.option("-b", "bucket_count", type=float, help="Number of age buckets (10).")
@click.option("-t", "bucket_time", type=float, help="Age limit of the first bucket, minutes (5).")
@click.option("-l", "linear", is_flag=True, help="Linear instead of doubling age buckets.")
@click.option("-w", "width", type=float, help="Terminal width (80; only larger values count).")
@click.argument("queues", nargs=-1)
@command_errors("qshape")
def qshape(
    config_dir: Path | None,
    senders: bool,
    parents: bool,
    min_subdomains: float | None,
    bucket_count: float | None,
    bucket_time: float | None,
    linear: bool,
    width: float | None,
    queues: tuple[str, ...],
) -> None:
    """Print the queue's domain and age distribution, as Postfix's qshape."""
    now = time.time()
    for flag, value, limit in (
        ("-b", bucket_count, MAX_BUCKETS),
        ("-w", width, MAX_WIDTH),
        ("-t", bucket_time, math.inf),
        ("-m", min_subdomains, math.inf),
    ):
        if value is not None and not (math.isfinite(value) and value <= limit):
            raise UsageError(f"{flag} {value}: must be a number up to {limit}")
    options = ShapeOptions.from_args(
        senders=senders,
        parents=parents,
        min_subdomains=min_subdomains,
        bucket_count=bucket_count,
        bucket_time=bucket_time,
        linear=linear,
        width=width,
    )
    _config, store = open_queue(config_dir)
    messages = collect(store, queues or DEFAULT_QUEUES)
    sys.stdout.write(render_qshape(messages, now, options))
