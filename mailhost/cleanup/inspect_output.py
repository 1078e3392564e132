"""Where content inspection (:mod:`mailhost.cleanup.inspect`) puts the lines
it lets through when the message's body is spooled
(:mod:`mailhost.queue.spool`): the primary header section in memory (at most
``header_size_limit`` bytes of it), everything after it appended to a new
body, a line at a time, so an inspected message is never held whole either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from mailhost.queue.spool import Body


async def each_line(lines: list[bytes]) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


async def chain_lines(head: list[bytes], body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for line in head:
        yield line
    async for line in body:
        yield line


class InspectedOutput:
    """Where inspected lines go: the header section to ``head`` (in memory,
    up to ``limit`` bytes), everything after it to ``body`` (None: all to
    ``head``), a line at a time."""

    def __init__(self, head: list[bytes], body: Body | None, limit: int) -> None:
        self.head = head
        self.body = body
        self.limit = limit
        self.used = 0
        self.counted = 0
        self.staged: list[bytes] = []
        self.in_body = False

    def target(self, past_header: bool) -> list[bytes]:
        """Where the next lines go; ``past_header``: the primary header
        has ended."""
        if self.body is None:
            return self.head
        if not self.in_body:
            self.used += sum(len(line) + 1 for line in self.head[self.counted :])
            self.counted = len(self.head)
            if past_header or (self.limit and self.used > self.limit):
                self.in_body = True
        return self.staged if self.in_body else self.head

    async def flush(self) -> None:
        if self.body is not None and self.staged:
            for line in self.staged:
                await self.body.append(line)
            self.staged.clear()
