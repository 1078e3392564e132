"""From a ``virtual_mailbox_maps`` result to a mailbox path below the base.

Postfix concatenates ``virtual_mailbox_base + "/" + result`` without any
check (spec 4.2).  mailhost deliberately deviates: a result that is absolute
or contains a ``..`` component (or a NUL) is refused — the recipient is
deferred with 4.3.5 and the refusal is logged as an error, so a poisoned
``mailbox.maildir`` column can never make the delivery agent write
elsewhere.  Symbolic links are not judged here, by name: the delivery walks
the path below the opened base without following any
(:mod:`mailhost.delivery.dirfd`), which a link swapped in later cannot
defeat.  A trailing ``/`` means Maildir, otherwise an mbox file (virtual(8)).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from mailhost.delivery.status import CONFIG_ERROR, DeliveryError
from mailhost.errors import ConfigError
from mailhost.fsutil import UnsafePathError, check_relative
from mailhost.log import logger

log = logger("delivery")


@dataclass(frozen=True)
class MailboxPath:
    """Where one recipient's mail goes."""

    path: Path
    maildir: bool
    #: the base ``path`` is below (trusted; nothing under it is followed)
    base: Path | None = None

    @property
    def kind(self) -> str:
        return "maildir" if self.maildir else "mailbox"


@functools.lru_cache(maxsize=64)
def check_mailbox_base(value: str) -> Path:
    """``virtual_mailbox_base`` must be an absolute path; virtual(8) dies with
    this exact text otherwise (an empty value included) and mail stays queued."""
    if not value.startswith("/"):
        raise ConfigError(f"do not specify relative pathname: virtual_mailbox_base = {value}")
    return Path(value)


#: Accepted (base, result) pairs and their mailbox, at most this many
#: (emptied when full): the same mailboxes get mail over and over.
PATH_MEMO_SIZE = 4096
_paths: dict[tuple[str, str], MailboxPath] = {}


def mailbox_path(base: str | Path, result: str, recipient: str = "") -> MailboxPath:
    """The mailbox for a ``virtual_mailbox_maps`` ``result``.

    Raises :class:`DeliveryError` 4.3.5 (deferred) for an empty or unsafe
    result, logging why with the recipient and the offending value (every
    time: only accepted results are remembered).
    """
    key = (str(base), result)
    known = _paths.get(key)
    if known is not None:
        return known
    path = _mailbox_path(key[0], result, recipient)
    if len(_paths) >= PATH_MEMO_SIZE:
        _paths.clear()
    _paths[key] = path
    return path


def _mailbox_path(base: str, result: str, recipient: str) -> MailboxPath:
    base_path = check_mailbox_base(base)
    who = f"recipient {recipient}: " if recipient else ""
    if not result.strip():
        log.warning("%sempty result from virtual_mailbox_maps", who)
        raise DeliveryError(CONFIG_ERROR.dsn, CONFIG_ERROR.text)
    maildir = result.endswith("/")
    relative = result.rstrip("/") if maildir else result
    if not relative:
        # "/" alone would be the base itself: never a mailbox.
        log.error("%srefusing mailbox path %r outside %s", who, result, base_path)
        raise DeliveryError(CONFIG_ERROR.dsn, CONFIG_ERROR.text)
    try:
        check_relative(relative)
    except UnsafePathError as exc:
        # A log line, not a traceback: the reason is in the text (DESIGN rule 12).
        log.error(  # noqa: TRY400
            "%srefusing mailbox path %r from virtual_mailbox_maps: %s "
            "(virtual_mailbox_base = %s); mail deferred",
            who,
            result,
            exc,
            base_path,
        )
        raise DeliveryError(CONFIG_ERROR.dsn, CONFIG_ERROR.text) from exc
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if not parts:
        log.error("%srefusing mailbox path %r: it is the base itself", who, result)
        raise DeliveryError(CONFIG_ERROR.dsn, CONFIG_ERROR.text)
    return MailboxPath(base_path.joinpath(*parts), maildir, base_path)
