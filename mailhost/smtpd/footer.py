"""What happens to every reply smtpd sends, on its way out (Postfix's
vsmtpd_chat_reply() and smtp_reply_footer()):

* ``smtpd_reject_footer``: a 4xx or 5xx reply gets the footer template
  appended, ``$name`` macros expanded from the session.  Each ``\\n`` (the
  two characters) in the template starts a new reply line carrying the last
  line's code and enhanced status; a template starting with ``\\c`` continues
  the last line instead (after a space, if the template has one).  A macro
  value keeps only the characters of smtpd_expand_filter (printable ASCII);
  others become ``_``.  An unknown macro name is logged and expands to
  nothing; a template that does not parse leaves the reply unchanged.
* ``soft_bounce = yes``: every ``5`` reply code becomes ``4``, and a ``5``
  enhanced status ``4`` — protocol errors included, not only rejects.

Macros (postconf(5) smtpd_reject_footer): ``client_address``,
``client_name``, ``client_port``, ``reverse_client_name``, ``helo_name``,
``client`` (``name[address]``), ``server_name`` (myhostname), ``sender``,
``sender_name``, ``sender_domain``, ``recipient``, ``recipient_name``,
``recipient_domain``, ``localtime``; ``$name``, ``${name}``, ``$(name)``,
``${name?text}`` (text when the value is not empty), ``${name:text}``
(text when it is empty).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from mailhost.log import logger
from mailhost.smtpd_check.rbl_reply import address_macro

log = logger("smtpd")

Lookup = Callable[[str], "str | None"]

_CODE = re.compile(r"^\d{3}[ -]")
_DSN = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(?= |$)")
_MACRO = re.compile(
    r"\$(?:(?P<bare>[A-Za-z0-9_]+)"
    r"|\{(?P<brace>[A-Za-z0-9_]+)(?:(?P<bop>[?:])(?P<btext>[^}]*))?\}"
    r"|\((?P<paren>[A-Za-z0-9_]+)(?:(?P<pop>[?:])(?P<ptext>[^)]*))?\))"
)


class FooterSyntaxError(ValueError):
    """A ``$`` that starts no macro, or an unterminated one."""


def _filtered(value: str) -> str:
    return "".join(c if c == "\t" or " " <= c <= "~" else "_" for c in value)


def expand(template: str, lookup: Lookup) -> str:
    """mac_expand() of a footer line; raises FooterSyntaxError."""
    out: list[str] = []
    i = 0
    while True:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            return "".join(out)
        out.append(template[i:j])
        if template[j + 1 : j + 2] == "$":
            out.append("$")
            i = j + 2
            continue
        match = _MACRO.match(template, j)
        if match is None:
            raise FooterSyntaxError(template[j:])
        name = match.group("bare") or match.group("brace") or match.group("paren")
        op = match.group("bop") or match.group("pop")
        text = match.group("btext") if match.group("bop") else match.group("ptext")
        value = lookup(name)
        if value is None:
            log.warning('unknown macro name "%s" in expansion request', name)
            value = ""
        if op == "?":
            out.append(expand(text or "", lookup) if value else "")
        elif op == ":":
            out.append("" if value else expand(text or "", lookup))
        else:
            out.append(_filtered(value))
        i = match.end()


def append_footer(reply: str, template: str, lookup: Lookup) -> str:
    """smtp_reply_footer(): ``reply`` (lines joined by CRLF) with the footer."""
    lines = reply.split("\r\n")
    if not all(_CODE.match(line + " ") for line in lines):
        return reply
    last = lines[-1]
    code = last[:3]
    found = _DSN.match(last[4:])
    dsn = found.group(0) if found else ""
    pieces = template.split("\\n")
    added: list[str] = []
    try:
        for n, piece in enumerate(pieces):
            final = n == len(pieces) - 1
            if n == 0 and piece.startswith("\\c"):
                lines[-1] += expand(piece[2:], lookup)
                continue
            prefix = code + (" " if final else "-") + (dsn + " " if dsn else "")
            added.append(prefix + expand(piece, lookup))
    except FooterSyntaxError:
        return reply
    if added:
        lines[-1] = lines[-1][:3] + "-" + lines[-1][4:]
    return "\r\n".join(lines + added)


def soft_bounced(reply: str) -> str:
    """soft_bounce: 5xx codes and 5.x.x statuses become 4xx / 4.x.x."""
    out = []
    for line in reply.split("\r\n"):
        if not line.startswith("5"):
            out.append(line)
        elif line[4:5] == "5":
            out.append("4" + line[1:4] + "4" + line[5:])
        else:
            out.append("4" + line[1:])
    return "\r\n".join(out)


def session_lookup(values: dict[str, str | None]) -> Lookup:
    """A footer lookup over the session's attributes (``values``), with
    ``localtime`` and the ``sender_*`` / ``recipient_*`` parts derived."""

    def lookup(name: str) -> str | None:
        if name == "localtime":
            return time.strftime("%b %d %H:%M:%S")
        for prefix in ("sender", "recipient"):
            if name.startswith(prefix):
                return address_macro(values.get(prefix), name[len(prefix) :])
        if name in values:
            return values[name] or ""
        return None

    return lookup
