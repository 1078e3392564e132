"""Mailbox ownership from ``virtual_uid_maps``/``virtual_gid_maps``, checked
the way virtual(8) checks it (spec 4.1): a uid not found or below
``virtual_minimum_uid``, a gid not found or not positive, defers the
recipient with 4.3.5 "mail system configuration error" and logs why.

Postfix reads both values with atol(3): leading white space, an optional
sign and the digits that follow; anything else ends the number (``abc`` is 0).
"""

from __future__ import annotations

import re

from mailhost.delivery.status import CONFIG_ERROR, DeliveryError
from mailhost.log import logger

log = logger("delivery")

_ATOL = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]*)")


def atol(value: str) -> int:
    """C atol(): the leading integer of ``value``, 0 when there is none."""
    m = _ATOL.match(value)
    digits = m.group(1) if m else ""
    return int(digits) if digits.lstrip("+-") else 0


def _refuse(text: str) -> DeliveryError:
    log.warning("%s", text)
    return DeliveryError(CONFIG_ERROR.dsn, CONFIG_ERROR.text)


def mailbox_owner(
    recipient: str, uid_value: str | None, gid_value: str | None, minimum_uid: int
) -> tuple[int, int]:
    """(uid, gid) for ``recipient`` from the two map results (None = not found)."""
    if uid_value is None:
        raise _refuse(f"recipient {recipient}: not found in virtual_uid_maps")
    uid = atol(uid_value)
    if uid < minimum_uid:
        raise _refuse(f"recipient {recipient}: bad uid {uid_value} in virtual_uid_maps")
    if gid_value is None:
        raise _refuse(f"recipient {recipient}: not found in virtual_gid_maps")
    gid = atol(gid_value)
    if gid <= 0:
        raise _refuse(f"recipient {recipient}: bad gid {gid_value} in virtual_gid_maps")
    return uid, gid
