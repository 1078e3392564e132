"""``mailhost postsuper``: Postfix's postsuper(1), queue maintenance by id.

``postsuper [-d ID] [-h ID] [-H ID] [-r ID] [-e ID] [-f ID] [queue...]``
(each option may repeat; ``ID`` is a queue id, ``ALL`` — upper case only —
or ``-`` for ids on stdin, one a line):

* ``-d`` delete (default queues: maildrop, incoming, active, deferred, hold);
* ``-h`` put on hold (from incoming, active, deferred);
* ``-H`` release from hold (to deferred, delivered at the next deferred scan);
* ``-r`` requeue: back to ``incoming``, so the queue manager routes the
  message again (Postfix sends it through maildrop and cleanup to redo
  address rewriting; mailhost resolves aliases at RCPT time and has no
  pickup, so routing is what is redone);
* ``-e`` force-expire: the queue manager returns the message to its sender at
  the next delivery attempt; ``-f`` force-expire and release from hold.

Texts and order exactly as Postfix 3.7.11 (recorded,
tests/queuetools/postfix_queue.json): one ``postsuper: QID: removed`` /
``placed on hold`` / ``released from hold`` / ``requeued`` / ``expired`` line
per message named by id (none for ``ALL``), then a summary for each action
asked for (``Deleted: 1 message``, ``Placed on hold: 0 messages``), on stderr
and in the maillog (``mailhost/postsuper[PID]: ...``).  Invalid ids:
``postsuper: warning: invalid mail queue id: ID``.  Exit 0.

It works on a live queue: every change is one rename, unlink or locked
append (the queue manager appends its results the same way).  A message the
running queue manager is delivering at that moment can be taken away (the
manager logs a warning); the results of that one attempt are then lost, so
its recipients may receive it once more after a release or requeue.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from mailhost.cli.common import command_errors, config_dir_option, fatal
from mailhost.cli.queuedir import add_maillog, open_queue, remove_handlers
from mailhost.log import logger, setup_command_logging
from mailhost.queue.ids import is_queue_id
from mailhost.queue.layout import (
    ACTIVE,
    CORRUPT,
    DEFERRED,
    HOLD,
    INCOMING,
    MAILDROP,
    QUEUE_NAMES,
    QueueFileNotFound,
)
from mailhost.queue.status import Expire
from mailhost.queue.store import QueueStore

log = logger("postsuper")

ALL = "ALL"
DEFAULT_QUEUES = (MAILDROP, INCOMING, ACTIVE, DEFERRED, HOLD)
HOLD_QUEUES = (INCOMING, ACTIVE, DEFERRED)
RELEASE_QUEUES = (HOLD,)
MESSAGE_QUEUES = (INCOMING, ACTIVE, DEFERRED, HOLD)
#: Where -r puts a message.  Postfix uses maildrop (pickup and cleanup run
#: it again); mailhost's pickup runs only where master.cf declares it, so -r
#: hands the message to the queue manager through incoming: delivered
#: recipients stay done, the rest are routed afresh (virtual aliases are not
#: expanded a second time).
REQUEUE_TO = INCOMING
USAGE = (
    "usage: postsuper [-c config_dir] [-d queue_id (delete)] [-e queue_id (expire)]"
    " [-f queue_id (expire and/or un-hold)] [-h queue_id (hold)] [-H queue_id (un-hold)]"
    " [-p (purge temporary files)] [-r queue_id (requeue)] [-s (structure fix)]"
    " [-S (redundant structure fix)][-v (verbose)] [queue...]"
)

Operation = Callable[[QueueStore, str, Sequence[str]], Awaitable[bool]]


async def _delete(store: QueueStore, queue_id: str, queues: Sequence[str]) -> bool:
    return await store.remove(queue_id, queues=queues)


async def _move(store: QueueStore, queue_id: str, to: str, queues: Sequence[str]) -> bool:
    try:
        await store.move(queue_id, to, from_queues=queues)
    except (QueueFileNotFound, FileNotFoundError):
        return False
    return True


async def _hold(store: QueueStore, queue_id: str, queues: Sequence[str]) -> bool:
    return await _move(store, queue_id, HOLD, [q for q in queues if q in HOLD_QUEUES])


async def _release(store: QueueStore, queue_id: str, queues: Sequence[str]) -> bool:
    return await _move(store, queue_id, DEFERRED, [q for q in queues if q == HOLD])


async def _requeue(store: QueueStore, queue_id: str, queues: Sequence[str]) -> bool:
    return await _move(store, queue_id, REQUEUE_TO, [q for q in queues if q in MESSAGE_QUEUES])


async def _expire(store: QueueStore, queue_id: str, queues: Sequence[str]) -> bool:
    try:
        await store.append_status(
            queue_id, [Expire(time.time(), forced=True)],
            queues=[q for q in queues if q in MESSAGE_QUEUES],
        )  # fmt: skip
    except (QueueFileNotFound, FileNotFoundError):
        return False
    return True


@dataclass(frozen=True)
class Action:
    """One postsuper action: its per-message text and summary text."""

    done: str
    summary: str
    operation: Operation
    default_queues: tuple[str, ...]


DELETE = Action("removed", "Deleted", _delete, DEFAULT_QUEUES)
REQUEUE = Action("requeued", "Requeued", _requeue, DEFAULT_QUEUES)
EXPIRE = Action("expired", "Force-expired", _expire, DEFAULT_QUEUES)
HOLD_ = Action("placed on hold", "Placed on hold", _hold, HOLD_QUEUES)
RELEASE = Action("released from hold", "Released from hold", _release, RELEASE_QUEUES)
#: The order Postfix 3.7 carries out (and reports) the actions.
ORDER = (REQUEUE, DELETE, EXPIRE, HOLD_, RELEASE)
RUN_ORDER = (DELETE, REQUEUE, EXPIRE, HOLD_, RELEASE)


def summary(action: Action, count: int) -> str:
    return f"{action.summary}: {count} message{'' if count == 1 else 's'}"


class Postsuper:
    def __init__(self, store: QueueStore, queues: Sequence[str], stdin_ids: list[str]) -> None:
        self.store = store
        self.queues = tuple(queues)
        self.stdin_ids = stdin_ids

    async def by_id(self, action: Action, ids: Sequence[str]) -> int:
        count = 0
        queues = self.queues or action.default_queues
        for queue_id in ids:
            if not is_queue_id(queue_id):
                log.warning("invalid mail queue id: %s", queue_id)
                continue
            if await action.operation(self.store, queue_id, queues):
                log.info("%s: %s", queue_id, action.done)
                count += 1
        return count

    async def everything(self, action: Action) -> int:
        count = 0
        queues = self.queues or action.default_queues
        for entry in await self.store.list(queues):
            if await action.operation(self.store, entry.queue_id, (entry.queue_name,)):
                count += 1
        return count

    async def run(self, asked: dict[str, list[str]], actions: dict[str, Action]) -> None:
        counts: dict[str, int] = {}
        for action in RUN_ORDER:
            names = [key for key, a in actions.items() if a is action and key in asked]
            if not names:
                continue
            ids = [i for key in names for i in asked[key]]
            count = 0
            if ALL in ids:
                count += await self.everything(action)
            expanded: list[str] = []
            for queue_id in ids:
                if queue_id == "-":
                    expanded += self.stdin_ids
                elif queue_id != ALL:
                    expanded.append(queue_id)
            count += await self.by_id(action, expanded)
            counts[action.summary] = count
        for action in ORDER:
            if action.summary in counts:
                log.info("%s", summary(action, counts[action.summary]))


def _ids_with_all_warning(option: str, ids: list[str]) -> list[str]:
    if ALL in ids and any(i != ALL for i in ids):
        log.warning('option "-%s ALL" will ignore other command line queue IDs', option)
        return [ALL]
    return ids


@click.command("postsuper", context_settings={"help_option_names": ["--help"]})
@config_dir_option
@click.option("-d", "delete", multiple=True, metavar="ID", help="Delete (ALL, - for stdin).")
@click.option("-h", "hold", multiple=True, metavar="ID", help="Put on hold.")
@click.option("-H", "release", multiple=True, metavar="ID", help="Release from hold.")
@click.option("-r", "requeue", multiple=True, metavar="ID", help="Requeue (route again).")
@click.option("-e", "expire", multiple=True, metavar="ID", help="Force-expire.")
@click.option("-f", "expire_release", multiple=True, metavar="ID",
              help="Force-expire and release from hold.")  # fmt: skip
@click.option("-v", "verbose", count=True, hidden=True)
@click.argument("queues", nargs=-1)
@command_errors("postsuper")
def postsuper(
    config_dir: Path | None,
    delete: tuple[str, ...],
    hold: tuple[str, ...],
    release: tuple[str, ...],
    requeue: tuple[str, ...],
    expire: tuple[str, ...],
    expire_release: tuple[str, ...],
    verbose: int,
    queues: tuple[str, ...],
) -> None:
    """Delete, hold, release, requeue or expire queued mail, as Postfix's postsuper."""
    asked = {
        key: list(values)
        for key, values in (("d", delete), ("h", hold), ("H", release), ("r", requeue),
                            ("e", expire), ("f", expire_release))
        if values
    }  # fmt: skip
    if not asked:
        fatal("postsuper", USAGE)
    for name in queues:
        if name not in QUEUE_NAMES or name == CORRUPT:
            fatal("postsuper", f"invalid directory name: {name}")
    config, store = open_queue(config_dir)
    setup_command_logging("postsuper")
    logger().setLevel(logging.INFO)
    # The store's own lines name the queue manager; postsuper says its own.
    store_log = logger("queue")
    store_level = store_log.level
    store_log.setLevel(logging.WARNING)
    handlers = add_maillog(config, "postsuper")
    try:
        for key in list(asked):
            asked[key] = _ids_with_all_warning(key, asked[key])
        stdin_ids: list[str] = []
        if any("-" in ids for ids in asked.values()):
            stdin_ids = [line.rstrip("\r\n") for line in sys.stdin]
        # -f is -e plus -H for the same ids.
        if "f" in asked:
            asked.setdefault("e", []).extend(asked["f"])
            asked.setdefault("H", []).extend(asked.pop("f"))
        actions = {"d": DELETE, "h": HOLD_, "H": RELEASE, "r": REQUEUE, "e": EXPIRE}
        asyncio.run(Postsuper(store, queues, stdin_ids).run(asked, actions))
    finally:
        remove_handlers(handlers)
        store_log.setLevel(store_level)
