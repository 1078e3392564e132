"""A message as a delivery agent writes it: bytes in memory, or — for
mail delivered inline during DATA (:mod:`mailhost.qmgr.inline`) — a
:class:`SpooledText` whose body stays in smtpd's spool file
(:mod:`mailhost.queue.spool`) and is copied into each Maildir file from
there (copy_file_range, or bounded chunks when CRLF must become LF), so a
message is never held whole in memory on its way into a mailbox.

Maildir delivery (:mod:`mailhost.delivery.maildir`) takes either form; the
other delivery agents take bytes (:func:`as_bytes`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mailhost.delivery.maildir_names import vsize as bytes_vsize
from mailhost.queue.spool import Body


@dataclass(frozen=True)
class SpooledText:
    """``head`` (the header section and anything put above it, LF line
    ends) followed by ``body``; ``lf_only``: the body's CRLFs are written
    as LF.  Two texts are equal when their heads are and they share one
    body (so copies with the same headers share one staged file)."""

    head: bytes
    body: Body
    lf_only: bool = False

    def __len__(self) -> int:
        return len(self.head) + self.body.written_length(lf_only=self.lf_only)

    def vsize(self) -> int:
        """RFC822.SIZE: each bare LF counts as CRLF."""
        body = self.body
        if self.lf_only:
            body_vsize = body.written_length(lf_only=True) + body.count
        else:
            body_vsize = body.length + body.count - body.cr_lines
        return bytes_vsize(self.head) + body_vsize

    def write_to(self, fd: int) -> None:
        """Write the whole text at ``fd``'s offset (blocking)."""
        view = memoryview(self.head)
        while view:
            view = view[os.write(fd, view) :]
        self.body.write_to(fd, lf_only=self.lf_only)

    def to_bytes(self) -> bytes:
        """The whole text in memory (for the delivery agents that need it)."""
        out = bytearray(self.head)
        for chunk in self.body.chunks():
            out += chunk
        if self.lf_only:
            return bytes(out).replace(b"\r\n", b"\n")
        return bytes(out)


#: A message to deliver.
Text = bytes | SpooledText


def as_bytes(text: Text) -> bytes:
    return text.to_bytes() if isinstance(text, SpooledText) else text


def lf_only(text: Text) -> Text:
    """``text`` with CRLF line ends as LF."""
    if isinstance(text, SpooledText):
        head = text.head.replace(b"\r\n", b"\n")
        if text.lf_only and len(head) == len(text.head):
            return text  # already so (each copy of a fan-out asks again)
        return SpooledText(head, text.body, True)
    return text.replace(b"\r\n", b"\n")


def prepend(head: bytes, text: Text) -> Text:
    """``head`` followed by ``text``."""
    if isinstance(text, SpooledText):
        return SpooledText(head + text.head, text.body, text.lf_only)
    return head + text


def header_part(text: Text) -> bytes:
    """What holds the primary header (all of it for bytes)."""
    return text.head if isinstance(text, SpooledText) else text


def text_vsize(text: Text) -> int:
    return text.vsize() if isinstance(text, SpooledText) else bytes_vsize(text)


def write_text(fd: int, text: Text) -> None:
    """Write ``text`` at ``fd``'s offset (blocking)."""
    if isinstance(text, SpooledText):
        text.write_to(fd)
        return
    view = memoryview(text)
    while view:
        view = view[os.write(fd, view) :]
