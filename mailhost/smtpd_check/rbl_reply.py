"""The reply to a DNS list hit (Postfix's rbl_reject_reply()).

The template is ``rbl_reply_maps``'s value for the list's domain (first with
its ``=filter``, then without), else ``default_rbl_reply``:

    $rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using
    $rbl_domain${rbl_reason?; $rbl_reason}

It is expanded once, not recursively (a TXT record's ``$`` stays a ``$``):
``$name``, ``${name}``, ``$(name)``, ``${name?text}``, ``${name:text}`` and
``$$``, with the names ``rbl_code`` (maps_rbl_reject_code), ``rbl_class``,
``rbl_what``, ``rbl_domain``, ``rbl_reason``/``rbl_txt`` and smtpd's
``client``, ``client_address``, ``client_name``, ``client_port``,
``reverse_client_name``, ``helo_name``, ``sender``, ``sender_name``,
``sender_domain``, ``recipient``, ``recipient_name``, ``recipient_domain``,
``server_name`` and ``localtime``.  Characters outside Postfix's default
``smtpd_expansion_filter`` (printable ASCII, space and tab) become ``_``.  A
template naming anything else is logged (``bad rbl reply template``) and the
default is used.  The result must start ``4NN `` or ``5NN ``; an RFC 3463
status may follow, else ``4.7.1``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailhost.errors import TableEmptyResult, TableTempFail
from mailhost.log import logger
from mailhost.smtpd_check.actions import server_error
from mailhost.smtpd_check.context import Context
from mailhost.smtpd_check.reject import POLICY, dsn_fix, dsn_split, reject
from mailhost.smtpd_check.state import CheckState, Status

log = logger("smtpd")

#: Postfix 3.7's default_rbl_reply.
DEFAULT_RBL_REPLY = (
    "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using "
    "$rbl_domain${rbl_reason?; $rbl_reason}"
)

_NAME = re.compile(r"[A-Za-z0-9_]+")


class TemplateError(ValueError):
    """An unknown name or broken syntax in a reply template."""


@dataclass(frozen=True)
class RblHit:
    """What the expansion knows of one DNS list hit."""

    #: the list's domain without its ``=filter``.
    domain: str
    #: the address or name looked up (``rbl_what``).
    what: str
    reply_class: str
    #: the TXT records joined with `` / `` (empty without TXT).
    reason: str


def _filtered(value: str) -> str:
    return "".join(c if c == "\t" or " " <= c <= "~" else "_" for c in value)


def address_macro(address: str | None, suffix: str) -> str | None:
    """smtpd_expand_addr(): ``sender``, ``sender_name``, ``sender_domain``."""
    if address is None:
        return ""
    if suffix == "":
        return address or "<>"
    if suffix == "_name":
        if not address:
            return "<>"
        return address.rpartition("@")[0] if "@" in address else address
    if suffix == "_domain":
        return address.rpartition("@")[2] if "@" in address else ""
    return None


def macro_lookup(ctx: Context, hit: RblHit, code: int) -> Callable[[str], str | None]:
    """rbl_expand_lookup() and smtpd_expand_lookup(): None for an unknown name."""
    state: CheckState = ctx.state

    def lookup(name: str) -> str | None:
        values = {
            "rbl_code": str(code),
            "rbl_domain": hit.domain,
            "rbl_reason": hit.reason,
            "rbl_txt": hit.reason,
            "rbl_what": hit.what,
            "rbl_class": hit.reply_class,
            "server_name": ctx.facts.server_name(),
            "client": state.client.namaddr,
            "client_port": str(state.client.port),
            "client_address": state.client.address,
            "client_name": state.client.name,
            "reverse_client_name": state.client.reverse_name,
            "helo_name": state.helo or "",
        }
        if name in values:
            return values[name]
        for prefix, address in (("sender", state.sender), ("recipient", state.recipient)):
            if name.startswith(prefix):
                return address_macro(address, name[len(prefix) :])
        if name == "localtime":
            return time.strftime("%b %d %H:%M:%S")
        return None

    return lookup


def expand(template: str, lookup: Callable[[str], str | None]) -> str:
    """mac_expand() without recursion; raises :class:`TemplateError`."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        i = j + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        if i < n and template[i] in "{(":
            close_ch = "}" if template[i] == "{" else ")"
            end = _closing(template, i, template[i], close_ch)
            inner = template[i + 1 : end]
            i = end + 1
            m = _NAME.match(inner)
            if m is None:
                raise TemplateError(f"empty macro name in {template!r}")
            rest = inner[m.end() :]
            value = _value(lookup, m.group())
            if not rest:
                out.append(value)
            elif rest[0] == "?":
                out.append(expand(rest[1:], lookup) if value else "")
            elif rest[0] == ":":
                out.append("" if value else expand(rest[1:], lookup))
            else:
                raise TemplateError(f"bad macro syntax in {template!r}")
            continue
        m = _NAME.match(template, i)
        if m is None:
            raise TemplateError(f"empty macro name in {template!r}")
        out.append(_value(lookup, m.group()))
        i = m.end()
    return "".join(out)


def _closing(text: str, start: int, open_ch: str, close_ch: str) -> int:
    depth = 0
    for k in range(start, len(text)):
        if text[k] == open_ch:
            depth += 1
        elif text[k] == close_ch:
            depth -= 1
            if depth == 0:
                return k
    raise TemplateError(f"unmatched {open_ch!r} in {text!r}")


def _value(lookup: Callable[[str], str | None], name: str) -> str:
    value = lookup(name)
    if value is None:
        log.warning('unknown macro name "%s" in expansion request', name)
        raise TemplateError(name)
    return _filtered(value)


async def _template(ctx: Context, rbl_domain: str, bare: str) -> str | None:
    maps = ctx.settings.rbl_reply_maps
    if maps is None:
        return None
    try:
        found = await maps.lookup(rbl_domain)
        if found is None and bare != rbl_domain:
            found = await maps.lookup(bare)
    except (TableTempFail, TableEmptyResult):
        raise server_error(ctx) from None
    return found


async def rbl_reject_reply(
    ctx: Context, rbl_domain: str, what: str, reply_class: str, reason: str
) -> Status:
    """See the module docstring."""
    bare = rbl_domain.partition("=")[0]
    hit = RblHit(bare, what, reply_class, reason)
    code = ctx.settings.code("maps_rbl_reject_code")
    lookup = macro_lookup(ctx, hit, code)
    default = ctx.settings.default_rbl_reply or DEFAULT_RBL_REPLY
    template = await _template(ctx, rbl_domain, bare)
    text: str | None = None
    if template is not None:
        try:
            text = expand(template, lookup)
        except TemplateError:
            log.warning(
                "rbl_reject_reply: bad rbl reply template for domain %s: %s",
                rbl_domain,
                template,
            )
    if text is None:
        try:
            text = expand(default, lookup)
        except TemplateError:
            log.warning("rbl_reject_reply: bad default rbl reply template: %s", default)
            raise server_error(ctx) from None
    soft = ctx.settings.soft_bounce
    if not re.match(r"[45]\d\d ", text):
        log.warning("rbl response code configuration error: %s", text)
        return reject(ctx.state, POLICY, 450, "4.7.1", "Service unavailable", soft_bounce=soft)
    status, words = dsn_split("4.7.1", text[4:].lstrip())
    return reject(
        ctx.state,
        POLICY,
        int(text[:3]),
        dsn_fix(status, reply_class),
        words or "Service unavailable",
        soft_bounce=soft,
    )
