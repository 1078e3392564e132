"""Syntax restrictions on names and addresses (no DNS):
``reject_invalid_helo_hostname``, ``reject_non_fqdn_helo_hostname``,
``reject_non_fqdn_sender``, ``reject_non_fqdn_recipient``, with Postfix's
valid_hostname() and valid_hostaddr() rules: labels of letters, digits and
``_`` (hyphens inside), at most 63 characters each and 255 in all, not all
numerical; ``[1.2.3.4]`` and ``[IPv6:…]`` literals judged as addresses.
"""

from __future__ import annotations

import functools

from mailhost.address import external_form
from mailhost.hostnames import valid_hostaddr, valid_mailhost_addr
from mailhost.hostnames import valid_hostname as _valid_hostname
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.reject import POLICY, reject
from mailhost.smtpd_check.state import (
    DUNNO,
    HELO_COMMAND,
    RECIPIENT_ADDRESS,
    SENDER_ADDRESS,
    Status,
)

#: The HELO name and the envelope domains are judged again at every RCPT
#: (smtpd_delay_reject): remembered (a pure function).
valid_hostname = functools.lru_cache(maxsize=1024)(_valid_hostname)


def _truncate_dot(name: str) -> str:
    """dup_if_truncate(): one trailing dot (not two) is dropped."""
    if len(name) > 1 and name.endswith(".") and not name.endswith(".."):
        return name[:-1]
    return name


def _valid_utf8_hostname(name: str, smtputf8: bool) -> bool:
    if name.isascii():
        return valid_hostname(name)
    if not smtputf8:
        return False
    try:
        return valid_hostname(name.encode("idna").decode("ascii"))
    except UnicodeError:
        return False


def _reject(call: Call, name: str, reply_class: str, code_name: str, status: str,
            why: str) -> Status:  # fmt: skip
    """Postfix names what is judged (the HELO name, the sender...), whichever
    stage the restriction is listed in."""
    ctx = call.ctx
    return reject(
        ctx.state,
        POLICY,
        ctx.settings.code(code_name),
        status,
        f"<{name}>: {reply_class} rejected: {why}",
        soft_bounce=ctx.settings.soft_bounce,
    )


def invalid_hostaddr(call: Call, literal: str) -> Status:
    inside = literal[1:-1] if len(literal) > 2 and literal.endswith("]") else literal
    if valid_mailhost_addr(inside):
        return DUNNO
    return _reject(call, literal, HELO_COMMAND, "invalid_hostname_reject_code", "5.5.2",
                   "invalid ip address")  # fmt: skip


async def reject_invalid_helo_hostname(call: Call) -> Status:
    helo = call.ctx.state.helo
    if helo is None:
        return DUNNO
    if helo.startswith("["):
        return invalid_hostaddr(call, helo)
    name = _truncate_dot(helo)
    if valid_hostname(name) or valid_hostaddr(name):
        return DUNNO
    return _reject(call, helo, HELO_COMMAND, "invalid_hostname_reject_code", "5.5.2",
                   "Invalid name")  # fmt: skip


async def reject_non_fqdn_helo_hostname(call: Call) -> Status:
    state = call.ctx.state
    helo = state.helo
    if helo is None:
        return DUNNO
    if helo.startswith("["):
        return invalid_hostaddr(call, helo)
    name = _truncate_dot(helo)
    if _valid_utf8_hostname(name, state.smtputf8) and "." in name:
        return DUNNO
    return _reject(call, helo, HELO_COMMAND, "non_fqdn_reject_code", "5.5.2",
                   "need fully-qualified hostname")  # fmt: skip


def _non_fqdn_address(call: Call, address: str, name: str, reply_class: str) -> Status:
    domain = address.rpartition("@")[2] if "@" in address else ""
    if domain.startswith("[") and domain.endswith("]"):
        return DUNNO
    test_domain = _truncate_dot(domain)
    if (
        test_domain
        and _valid_utf8_hostname(test_domain, call.ctx.state.smtputf8)
        and ("." in test_domain)
    ):
        return DUNNO
    return _reject(call, name, reply_class, "non_fqdn_reject_code", "4.5.2",
                   "need fully-qualified address")  # fmt: skip


async def reject_non_fqdn_sender(call: Call) -> Status:
    sender = call.ctx.state.sender
    if not sender:
        return DUNNO
    return _non_fqdn_address(call, sender, sender, SENDER_ADDRESS)


async def reject_non_fqdn_recipient(call: Call) -> Status:
    recipient = call.ctx.state.recipient
    if recipient is None:
        return DUNNO
    shown = external_form(recipient) if "@" in recipient else recipient
    return _non_fqdn_address(call, recipient, shown, RECIPIENT_ADDRESS)


RESTRICTIONS: dict[str, Restriction] = {
    "reject_invalid_helo_hostname": reject_invalid_helo_hostname,
    "reject_invalid_hostname": reject_invalid_helo_hostname,
    "reject_non_fqdn_helo_hostname": reject_non_fqdn_helo_hostname,
    "reject_non_fqdn_hostname": reject_non_fqdn_helo_hostname,
    "reject_non_fqdn_sender": reject_non_fqdn_sender,
    "reject_non_fqdn_recipient": reject_non_fqdn_recipient,
}
