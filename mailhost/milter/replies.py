"""The text of a filter's SMFIR_REPLYCODE, as Postfix checks and uses it."""

from __future__ import annotations


def valid_reply(text: str) -> bool:
    """``ddd d.d.d text`` lines as Postfix accepts them: 4xx or 5xx, ``-``
    between lines and a space on the last; an enhanced code must match the
    class."""
    if "\0" in text or not text:
        return False
    lines = text.split("\r\n")
    for number, line in enumerate(lines):
        final = number == len(lines) - 1
        if (
            len(line) < 4
            or line[0] not in "45"
            or not line[1:3].isdigit()
            or line[3] != (" " if final else "-")
            or (len(line) > 4 and line[4].isdigit() and line[4] != line[0])
            or "\r" in line
            or "\n" in line
        ):
            return False
    return True


def unescape_percent(text: str) -> str:
    """Sendmail uses the reply as a format string: ``%%`` is ``%``; a single
    ``%`` is dropped (as Postfix does)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            i += 1
            if i < len(text):
                out.append(text[i])
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)
