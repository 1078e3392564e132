"""``mailhost postcat``: Postfix's postcat(1), a queue file in readable form
(layout in :mod:`mailhost.queue.dump`).

``postcat -q QID...`` looks the ids up in the queues (maildrop, active,
incoming, deferred, hold, corrupt); ``postcat FILE...`` reads files by name.
``-e`` envelope, ``-h`` header, ``-b`` body (none of them: all three).
An id that is not queued: ``postcat: fatal: open queue file QID: No such
file or directory``, exit 1; a file that is not a queue file:
``postcat: warning: FILE: input is not a valid queue file``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from mailhost.cli.common import command_errors, config_dir_option, fatal
from mailhost.cli.queuedir import open_queue
from mailhost.queue import qfile
from mailhost.queue.dump import Sections
from mailhost.queue.dump import postcat as render
from mailhost.queue.ids import is_queue_id
from mailhost.queue.layout import CORRUPT, SCAN_ORDER, QueueFileNotFound
from mailhost.queue.qfile import CorruptQueueFile
from mailhost.queue.store import QueueStore

QUEUES = (*SCAN_ORDER, CORRUPT)


def _by_id(store: QueueStore, queue_id: str, sections: Sections) -> None:
    if not is_queue_id(queue_id):
        fatal("postcat", f"open queue file {queue_id}: No such file or directory")
    try:
        entry, qf = asyncio.run(store.read(queue_id, queues=QUEUES))
    except (QueueFileNotFound, FileNotFoundError):
        fatal("postcat", f"open queue file {queue_id}: No such file or directory")
        return
    except CorruptQueueFile:
        click.echo(f"postcat: warning: {queue_id}: input is not a valid queue file", err=True)
        return
    _write(render(qf, f"{entry.queue_name}/{queue_id}", sections))


def _by_name(name: str, sections: Sections) -> None:
    try:
        with Path(name).open("rb") as f:
            qf = qfile.read(f)
    except CorruptQueueFile:
        click.echo(f"postcat: warning: {name}: input is not a valid queue file", err=True)
        return
    except OSError as exc:
        fatal("postcat", f"open {name}: {exc.strerror}")
        return
    _write(render(qf, name, sections))


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@click.command("postcat", context_settings={"help_option_names": ["--help"]})
@config_dir_option
@click.option("-q", "by_queue_id", is_flag=True, help="Arguments are queue ids.")
@click.option("-e", "envelope", is_flag=True, help="Print the envelope.")
@click.option("-h", "header", is_flag=True, help="Print the message header.")
@click.option("-b", "body", is_flag=True, help="Print the message body.")
@click.option("-v", "verbose", count=True, hidden=True)
@click.argument("names", nargs=-1, required=True)
@command_errors("postcat")
def postcat(
    config_dir: Path | None,
    by_queue_id: bool,
    envelope: bool,
    header: bool,
    body: bool,
    verbose: int,
    names: tuple[str, ...],
) -> None:
    """Show queue files (by name, or by queue id with -q), as Postfix's postcat."""
    sections = Sections.from_flags(envelope, header, body)
    if by_queue_id:
        _config, store = open_queue(config_dir)
        for queue_id in names:
            _by_id(store, queue_id, sections)
    else:
        for name in names:
            _by_name(name, sections)
